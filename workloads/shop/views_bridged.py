"""`bridged` variant: ``async def`` views calling the existing sync code via ``sync_to_async``.

This is the half-migrated state: one crossing per view, thread_sensitive (the default).
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

from shop.views_sync import catalog_html


async def catalog(request: HttpRequest) -> HttpResponse:
    return HttpResponse(await sync_to_async(catalog_html)())
