# mypy: ignore-errors
from django.urls import path

from gilsite import views

urlpatterns = [path("checksum/", views.checksum)]
