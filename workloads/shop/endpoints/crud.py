"""`crud`: a write path, create then update an order inside one transaction.

Django's transactions do not work in async mode (its docs say to wrap the transactional
block in ``sync_to_async``), so the ``async`` variant necessarily bridges this block too;
only ``async-db`` (django-async-backend's ``async_atomic``) runs it on an async connection.
The body leaves out the new row's id so every variant and run returns the same bytes.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse

from shop.endpoints.common import bridge, int_param, json_response, with_params
from shop.models import Account, Book, Order

ACCOUNT_ID = 3
BOOK_ID = 11


def params(request: HttpRequest) -> int:
    return int_param(request, "quantity", 2, 1, 1_000)


def write_sync(quantity: int) -> dict[str, Any]:
    with transaction.atomic():
        order = Order.objects.create(
            account=Account.objects.get(pk=ACCOUNT_ID),
            book=Book.objects.get(pk=BOOK_ID),
            quantity=quantity,
            status="new",
        )
        order.status = "paid"
        order.save(update_fields=["status"])
    return {"created": True, "status": order.status, "quantity": order.quantity, "book": BOOK_ID}


@with_params(params)
def sync_view(request: HttpRequest, quantity: Any) -> HttpResponse:
    return json_response(write_sync(quantity))


@with_params(params)
async def async_view(request: HttpRequest, quantity: Any) -> HttpResponse:
    return json_response(await bridge(request, write_sync)(quantity))


bridged_view = async_view


async def write_asyncdb(quantity: int) -> dict[str, Any]:
    """The same writes in an async transaction on django-async-backend's connection."""
    from django_async_backend.db.transaction import async_atomic

    async with async_atomic():
        account = await Account.async_objects.aget(pk=ACCOUNT_ID)  # type: ignore[attr-defined]
        book = await Book.async_objects.aget(pk=BOOK_ID)  # type: ignore[attr-defined]
        order = await Order.async_objects.acreate(account=account, book=book, quantity=quantity, status="new")  # type: ignore[attr-defined]
        order.status = "paid"
        await order.async_save(update_fields=["status"])
    return {"created": True, "status": order.status, "quantity": order.quantity, "book": BOOK_ID}


@with_params(params)
async def asyncdb_view(request: HttpRequest, quantity: Any) -> HttpResponse:
    return json_response(await write_asyncdb(quantity))
