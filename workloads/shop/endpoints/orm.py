"""`orm`: N book reads with a foreign-key hop (``?n=N&mode=lazy|select``).

``lazy`` follows ``book.author`` per row (the N+1 pattern); ``select`` uses
``select_related``. In async code a lazy relation access would raise
SynchronousOnlyOperation, so the async variant does the N+1 explicitly with ``aget``.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from shop.endpoints.common import bridge, choice_param, int_param, json_response, with_params
from shop.models import Author, Book


def params(request: HttpRequest) -> tuple[int, str]:
    return int_param(request, "n", 20, 1, 500), choice_param(request, "mode", "select", ("lazy", "select"))


def body(rows: list[tuple[str, str]]) -> dict[str, Any]:
    return {"count": len(rows), "books": [{"title": t, "author": a} for t, a in rows]}


def fetch_sync(n: int, mode: str) -> list[tuple[str, str]]:
    qs = Book.objects.order_by("id")
    if mode == "select":
        qs = qs.select_related("author")
    return [(b.title, b.author.name) for b in qs[:n]]


async def fetch_async(n: int, mode: str) -> list[tuple[str, str]]:
    if mode == "select":
        return [(b.title, b.author.name) async for b in Book.objects.select_related("author").order_by("id")[:n]]
    rows = []
    async for b in Book.objects.order_by("id")[:n]:
        author = await Author.objects.aget(pk=b.author_id)
        rows.append((b.title, author.name))
    return rows


async def fetch_asyncdb(n: int, mode: str) -> list[tuple[str, str]]:
    """Like ``fetch_async`` but on django-async-backend's real async connection."""
    if mode == "select":
        qs = Book.async_objects.select_related("author").order_by("id")[:n]  # type: ignore[attr-defined]
        return [(b.title, b.author.name) async for b in qs]
    rows = []
    async for b in Book.async_objects.order_by("id")[:n]:  # type: ignore[attr-defined]
        author = await Author.async_objects.aget(pk=b.author_id)  # type: ignore[attr-defined]
        rows.append((b.title, author.name))
    return rows


@with_params(params)
def sync_view(request: HttpRequest, parsed: Any) -> HttpResponse:
    n, mode = parsed
    return json_response(body(fetch_sync(n, mode)))


@with_params(params)
async def async_view(request: HttpRequest, parsed: Any) -> HttpResponse:
    n, mode = parsed
    return json_response(body(await fetch_async(n, mode)))


@with_params(params, bridged=True)
async def bridged_view(request: HttpRequest, parsed: Any) -> HttpResponse:
    n, mode = parsed
    return json_response(body(await bridge(request, fetch_sync)(n, mode)))


@with_params(params)
async def asyncdb_view(request: HttpRequest, parsed: Any) -> HttpResponse:
    n, mode = parsed
    return json_response(body(await fetch_asyncdb(n, mode)))
