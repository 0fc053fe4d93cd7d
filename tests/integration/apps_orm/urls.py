from __future__ import annotations

from django.urls import path

from tests.integration.apps_orm import views

urlpatterns = [
    path("orm", views.orm),
    path("fds", views.fds),
]
