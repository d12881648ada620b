"""``/<endpoint>/<view>/`` for every endpoint shape and view kind (sync, async, bridged, asyncdb).

The ``sync-on-asgi`` variant is the ``sync`` view served under ASGI, so it has no URL of
its own.
"""

from __future__ import annotations

from django.urls import path
from shop.endpoints import ENDPOINTS
from shop.views_sync import health

urlpatterns = [path("health/", health)]
for name, module in ENDPOINTS.items():
    urlpatterns += [
        path(f"{name}/sync/", module.sync_view),
        path(f"{name}/async/", module.async_view),
        path(f"{name}/bridged/", module.bridged_view),
        path(f"{name}/asyncdb/", module.asyncdb_view),
    ]
