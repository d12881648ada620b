"""`crud`: a write path, create then update an order inside one transaction.

Django's transactions do not work in async mode (its docs say to wrap the transactional
block in ``sync_to_async``), so the ``async`` variant necessarily bridges this block too;
only ``async-db`` (django-async-backend's ``async_atomic``) runs it on an async connection.
The body leaves out the new row's id so every variant and run returns the same bytes.

A real client writes with a POST: ``quantity`` comes from the form body
(``quantity=2``, ``application/x-www-form-urlencoded``), or from the query string of a
GET for older plans. With the django-default stack the CSRF middleware checks the POST,
and the client passes it as a JavaScript client would: the ``csrftoken`` cookie and the
same token in ``X-CSRFToken`` (``shop.identity``).

On SQLite every write transaction starts with ``BEGIN IMMEDIATE``, which waits (up to the
``timeout`` option) for the database's single write lock. The time spent in that statement
is the wait for the lock; it goes out in ``X-Lab-Write-Lock-Wait-Us`` (integer
microseconds) so a load generator can report it under concurrency. Timing one statement
per request is cheap enough to leave on while measuring.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse

from shop.endpoints.common import bridge, int_param, json_response, with_params
from shop.models import Account, Book, Order

ACCOUNT_ID = 3
BOOK_ID = 11


WRITE_LOCK_HEADER = "X-Lab-Write-Lock-Wait-Us"


def params(request: HttpRequest) -> int:
    data = request.POST if request.method == "POST" else None
    return int_param(request, "quantity", 2, 1, 1_000, data=data)


class WriteLockTimer:
    """An execute wrapper that adds up the time spent in ``BEGIN`` statements (SQLite's lock wait)."""

    def __init__(self) -> None:
        self.waited_ns = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if not sql.startswith("BEGIN"):
            return execute(sql, params, many, context)
        start = time.perf_counter_ns()
        try:
            return execute(sql, params, many, context)
        finally:
            self.waited_ns += time.perf_counter_ns() - start


def write_sync(quantity: int) -> tuple[dict[str, Any], int | None]:
    """The write, and the microseconds spent waiting for SQLite's write lock (None elsewhere)."""
    timer = WriteLockTimer() if connection.vendor == "sqlite" else None
    with connection.execute_wrapper(timer) if timer else contextlib.nullcontext():
        with transaction.atomic():
            order = Order.objects.create(
                account=Account.objects.get(pk=ACCOUNT_ID),
                book=Book.objects.get(pk=BOOK_ID),
                quantity=quantity,
                status="new",
            )
            order.status = "paid"
            order.save(update_fields=["status"])
    body = {"created": True, "status": order.status, "quantity": order.quantity, "book": BOOK_ID}
    return body, (timer.waited_ns // 1_000 if timer else None)


def respond(result: tuple[dict[str, Any], int | None]) -> HttpResponse:
    body, waited_us = result
    response = json_response(body)
    if waited_us is not None:
        response[WRITE_LOCK_HEADER] = str(waited_us)
    return response


@with_params(params)
def sync_view(request: HttpRequest, quantity: Any) -> HttpResponse:
    return respond(write_sync(quantity))


@with_params(params)
async def async_view(request: HttpRequest, quantity: Any) -> HttpResponse:
    return respond(await bridge(request, write_sync)(quantity))


@with_params(params, bridged=True)
async def bridged_view(request: HttpRequest, quantity: Any) -> HttpResponse:
    # The same bridged write as ``async``; only the user check differs (bridged too).
    return respond(await bridge(request, write_sync)(quantity))


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
