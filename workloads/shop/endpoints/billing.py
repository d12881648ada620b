"""`billing`: a product-style endpoint, modelled on a real billing page.

Load the account, follow its plan relation, read a feature flag from the cache, call an
external billing API once (``?latency=L`` ms), return JSON. ``bridged`` is the typical
half-migration: an ``async def`` view calling the three existing sync helpers through
``sync_to_async`` one after the other.

Crossings per request, counted by hand (steady state: a server after its first request,
the flag already cached; default middleware stack, SQLite, locmem cache). Everything up to
the ASGI app's return counts, so Django's own handler crossings are in:

===============================================  =====  =======  ============
sync_to_async from                               async  bridged  sync-on-asgi
===============================================  =====  =======  ============
``request_started.asend`` (its sync receivers)       1        1             1
Security + Common middleware (MiddlewareMixin:       4        4             4
process_request and process_response each)
the view                                             2        3             1
``sync_to_async(response.close)`` (runs the          1        1             1
``request_finished`` receivers)
total                                                8        9             7
===============================================  =====  =======  ============

The view: ``async`` crosses in ``aget`` and in ``cache.aget_or_set``, whose key is found by
one ``aget`` (locmem has no native async API: each a-method is ``sync_to_async`` of the
sync one; httpx's async client does not cross); ``bridged`` crosses once per sync helper
(``load_account``, ``read_flag``, ``sync_get``); ``sync-on-asgi`` once, for the whole sync
view. Cold (first request, empty cache) ``aget_or_set`` misses and makes three: ``aget``,
``aadd``, ``aget``, so ``async`` is 10; ``bridged`` stays 9 (its miss stays in one thread).
``sync`` under WSGI never crosses (0), and no variant uses ``async_to_sync`` here. With the
django-default stack the middleware makes 13 (two each for Security, Session, Common,
Messages; three for Csrf, with ``process_view``; one each for Authentication and
XFrameOptions) and the user check adds 2 to ``async`` (``auser()``: session and user, one
``aget`` each) and 1 to ``bridged``: 19, 19 and 16. ``tests/test_smoke.py`` asserts these.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from shop import upstream_clients as clients
from shop.endpoints.common import bridge, choice_param, int_param, json_response, with_params
from shop.models import Account

FLAG_KEY = "flag:usage-based-invoices"


def params(request: HttpRequest) -> tuple[int, int, str, str]:
    return (
        int_param(request, "account", 42, 1, 200),
        int_param(request, "latency", 20, 0, 10_000),
        choice_param(request, "client", "httpx", ("httpx", "aiohttp")),
        choice_param(request, "dist", "fixed", ("fixed", "exp")),
    )


def body(account: Account, flag: bool, billing: bytes) -> dict[str, Any]:
    return {
        "account": account.name,
        "plan": account.plan.name,
        "monthly_cents": account.plan.monthly_cents * account.seats,
        "seats": account.seats,
        "usage_based": flag,
        "billing": json.loads(billing)["status"],
    }


def load_account(account_id: int) -> Account:
    return Account.objects.select_related("plan").get(pk=account_id)


def read_flag() -> bool:
    return bool(cache.get_or_set(FLAG_KEY, True, timeout=None))


@with_params(params)
def sync_view(request: HttpRequest, parsed: Any) -> HttpResponse:
    account_id, latency, _client, dist = parsed
    return json_response(body(load_account(account_id), read_flag(), clients.sync_get(latency, dist)))


@with_params(params)
async def async_view(request: HttpRequest, parsed: Any) -> HttpResponse:
    account_id, latency, client, dist = parsed
    account = await Account.objects.select_related("plan").aget(pk=account_id)
    flag = bool(await cache.aget_or_set(FLAG_KEY, True, timeout=None))
    return json_response(body(account, flag, await clients.async_get(latency, client, dist)))


@with_params(params, bridged=True)
async def bridged_view(request: HttpRequest, parsed: Any) -> HttpResponse:
    account_id, latency, _client, dist = parsed
    account = await bridge(request, load_account)(account_id)
    flag = await bridge(request, read_flag)()
    billing = await bridge(request, clients.sync_get)(latency, dist)
    return json_response(body(account, flag, billing))


@with_params(params)
async def asyncdb_view(request: HttpRequest, parsed: Any) -> HttpResponse:
    """The destination state: the account read on a real async connection (the cache is
    still Django's, whose async API wraps the sync one)."""
    account_id, latency, client, dist = parsed
    account = await Account.async_objects.select_related("plan").aget(pk=account_id)  # type: ignore[attr-defined]
    flag = bool(await cache.aget_or_set(FLAG_KEY, True, timeout=None))
    return json_response(body(account, flag, await clients.async_get(latency, client, dist)))
