"""`sync` variant: plain ``def`` views, the state before any migration."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from shop import catalog as page
from shop.models import Author, Book


def catalog_html() -> str:
    author = Author.objects.get(pk=page.AUTHOR_ID)
    total = Book.objects.count()
    mine = Book.objects.filter(author=author).count()
    books = list(Book.objects.select_related("author").order_by("id")[: page.PAGE_SIZE])
    return page.render(page.context(author, total, mine, books))


def catalog(request: HttpRequest) -> HttpResponse:
    return HttpResponse(catalog_html())


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")
