"""`template`: a few ORM queries and a Django template rendering R rows (``?rows=R``)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from shop.endpoints.common import bridge, int_param, with_params
from shop.models import Author, Book

AUTHOR_ID = 7
TEMPLATE = "shop/template.html"


def params(request: HttpRequest) -> int:
    return int_param(request, "rows", 20, 1, 2_000)


def render(author: Any, total: int, mine: int, books: list[Any]) -> str:
    return render_to_string(TEMPLATE, {"author": author, "total_books": total, "author_books": mine, "books": books})


def context_sync(rows: int) -> tuple[Any, int, int, list[Any]]:
    author = Author.objects.get(pk=AUTHOR_ID)
    total = Book.objects.count()
    mine = Book.objects.filter(author=author).count()
    books = list(Book.objects.select_related("author").order_by("id")[:rows])
    return author, total, mine, books


async def context_async(rows: int) -> tuple[Any, int, int, list[Any]]:
    author = await Author.objects.aget(pk=AUTHOR_ID)
    total = await Book.objects.acount()
    mine = await Book.objects.filter(author=author).acount()
    books = [b async for b in Book.objects.select_related("author").order_by("id")[:rows]]
    return author, total, mine, books


async def context_asyncdb(rows: int) -> tuple[Any, int, int, list[Any]]:
    """Like ``context_async`` but on django-async-backend's real async connection."""
    author = await Author.async_objects.aget(pk=AUTHOR_ID)  # type: ignore[attr-defined]
    total = await Book.async_objects.acount()  # type: ignore[attr-defined]
    mine = await Book.async_objects.filter(author=author).acount()  # type: ignore[attr-defined]
    qs = Book.async_objects.select_related("author").order_by("id")[:rows]  # type: ignore[attr-defined]
    books = [b async for b in qs]
    return author, total, mine, books


@with_params(params)
def sync_view(request: HttpRequest, rows: Any) -> HttpResponse:
    return HttpResponse(render(*context_sync(rows)))


@with_params(params)
async def async_view(request: HttpRequest, rows: Any) -> HttpResponse:
    # Rendering touches no lazy relation (select_related above), so it is safe in async code.
    return HttpResponse(render(*await context_async(rows)))


@with_params(params, bridged=True)
async def bridged_view(request: HttpRequest, rows: Any) -> HttpResponse:
    return HttpResponse(render(*await bridge(request, context_sync)(rows)))


@with_params(params)
async def asyncdb_view(request: HttpRequest, rows: Any) -> HttpResponse:
    return HttpResponse(render(*await context_asyncdb(rows)))
