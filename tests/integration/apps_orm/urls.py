from __future__ import annotations

from django.urls import path

from tests.integration.apps_orm import views

urlpatterns = [
    path("orm", views.orm),
    path("orm-asgiref", views.orm_asgiref),
    path("fds", views.fds),
]
