"""`long-poll`: hold the request for D ms, then answer that nothing happened (``?hold=D``).

A long-polling client keeps one mostly idle request open per user; the mix is meant for
hundreds of connections at once (256-1024), where a threaded server needs a thread per
connection and an async one does not. Each variant waits the way its code would:
``sync`` with ``time.sleep`` (holding a server thread), ``async`` with ``asyncio.sleep``,
``bridged`` through the existing sync wait helper in ``sync_to_async`` (holding a thread
of the request's own context). The body is the same in every variant.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from django.http import HttpRequest, HttpResponse

from shop.endpoints.common import bridge, int_param, json_response, with_params


def params(request: HttpRequest) -> int:
    return int_param(request, "hold", 1_000, 0, 60_000)


def body(hold_ms: int) -> dict[str, Any]:
    return {"events": [], "held_ms": hold_ms, "timed_out": True}


def wait_sync(hold_ms: int) -> dict[str, Any]:
    """The sync helper a half-migrated app already has: wait for news until the timeout."""
    time.sleep(hold_ms / 1000)
    return body(hold_ms)


@with_params(params)
def sync_view(request: HttpRequest, hold_ms: Any) -> HttpResponse:
    return json_response(wait_sync(hold_ms))


@with_params(params)
async def async_view(request: HttpRequest, hold_ms: Any) -> HttpResponse:
    await asyncio.sleep(hold_ms / 1000)
    return json_response(body(hold_ms))


@with_params(params, bridged=True)
async def bridged_view(request: HttpRequest, hold_ms: Any) -> HttpResponse:
    return json_response(await bridge(request, wait_sync)(hold_ms))


# No database access here: the async-db variant is the async view.
asyncdb_view = async_view
