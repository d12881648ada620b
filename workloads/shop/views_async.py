"""`async` variant: ``async def`` views on Django's async ORM API.

Django's a-prefixed methods still run each query through ``sync_to_async`` on a sync
connection; that cost is part of what this variant measures.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from shop import catalog as page
from shop.models import Author, Book


async def catalog(request: HttpRequest) -> HttpResponse:
    author = await Author.objects.aget(pk=page.AUTHOR_ID)
    total = await Book.objects.acount()
    mine = await Book.objects.filter(author=author).acount()
    books = [b async for b in Book.objects.select_related("author").order_by("id")[: page.PAGE_SIZE]]
    return HttpResponse(page.render(page.context(author, total, mine, books)))
