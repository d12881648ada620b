from __future__ import annotations

from django.urls import path
from shop import views_async, views_bridged, views_sync

urlpatterns = [
    path("health/", views_sync.health),
    path("catalog/sync/", views_sync.catalog),
    path("catalog/async/", views_async.catalog),
    path("catalog/bridged/", views_bridged.catalog),
]
