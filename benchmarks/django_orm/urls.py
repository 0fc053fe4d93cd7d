from __future__ import annotations

from django.urls import path

from benchmarks.django_orm import views

urlpatterns = [path("<str:bridge>/<str:work>", views.queries)]
