"""`stream`: server-sent events, N events spaced by D ms (``?events=N&interval=D``).

A timer is the event source: each event follows a wait of D ms, so a request holds its
connection for about N x D ms while doing almost no work, the case where async code
should pay. Each variant waits the way its code would:

- ``sync``: ``StreamingHttpResponse`` over a generator that ``time.sleep``s; under WSGI
  it holds one server thread for the whole stream.
- ``async``: an async generator that ``asyncio.sleep``s; it holds no thread.
- ``bridged``: an async generator calling the existing sync "wait for the next event"
  helper through ``sync_to_async`` once per event (the request's thread sleeps).
- ``sync-on-asgi``: the sync view under ASGI. Django consumes a sync iterator in one
  ``sync_to_async(list)`` call (with a warning) and sends the events only when the
  last one is ready: real Django behaviour, which the timing of that variant shows.

The events are identical bytes in every variant (``id``, ``event`` and a JSON ``data``
line per event), so the lab's body check covers the stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from shop.endpoints.common import bridge, int_param, with_params

CONTENT_TYPE = "text/event-stream"


def params(request: HttpRequest) -> tuple[int, int]:
    return int_param(request, "events", 5, 1, 1_000), int_param(request, "interval", 100, 0, 10_000)


def event(seq: int, total: int) -> bytes:
    data = json.dumps({"seq": seq, "of": total, "last": seq == total - 1}, sort_keys=True, separators=(",", ":"))
    return f"id: {seq}\nevent: tick\ndata: {data}\n\n".encode()


def next_event_sync(seq: int, total: int, interval_ms: int) -> bytes:
    """The sync helper a half-migrated app already has: wait for the next event, return it."""
    time.sleep(interval_ms / 1000)
    return event(seq, total)


def respond(content: Iterator[bytes] | AsyncIterator[bytes]) -> HttpResponse:
    response = StreamingHttpResponse(content, content_type=CONTENT_TYPE)
    # What an SSE endpoint sends so caches and proxies pass events through as they come.
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response  # type: ignore[return-value]


@with_params(params)
def sync_view(request: HttpRequest, parsed: Any) -> HttpResponse:
    total, interval_ms = parsed

    def events() -> Iterator[bytes]:
        for seq in range(total):
            yield next_event_sync(seq, total, interval_ms)

    return respond(events())


@with_params(params)
async def async_view(request: HttpRequest, parsed: Any) -> HttpResponse:
    total, interval_ms = parsed

    async def events() -> AsyncIterator[bytes]:
        for seq in range(total):
            await asyncio.sleep(interval_ms / 1000)
            yield event(seq, total)

    return respond(events())


@with_params(params, bridged=True)
async def bridged_view(request: HttpRequest, parsed: Any) -> HttpResponse:
    total, interval_ms = parsed
    next_event = bridge(request, next_event_sync)

    async def events() -> AsyncIterator[bytes]:
        for seq in range(total):
            yield await next_event(seq, total, interval_ms)

    return respond(events())


# No database access here: the async-db variant is the async view.
asyncdb_view = async_view
