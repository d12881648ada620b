"""The catalog endpoint's shared parts: parameters, context building and rendering.

Every variant fetches the same rows and renders the same template, so bodies are
identical byte for byte; only how the queries are awaited differs.
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string

AUTHOR_ID = 7
PAGE_SIZE = 20
TEMPLATE = "shop/catalog.html"


def context(author: Any, total_books: int, author_books: int, books: list[Any]) -> dict[str, Any]:
    return {
        "author": author,
        "total_books": total_books,
        "author_books": author_books,
        "books": books,
    }


def render(ctx: dict[str, Any]) -> str:
    return render_to_string(TEMPLATE, ctx)
