"""`external`: K calls to the upstream simulator of latency L ms, sequential or fan-out.

``?k=K&latency=L&mode=sequential|fanout&client=httpx|aiohttp&dist=fixed|exp``. ``sync`` fans out on a
thread pool, ``async`` with ``asyncio.gather``; ``bridged`` calls the existing sync helper
through ``sync_to_async`` (once per call when sequential, once for the whole fan-out).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from django.http import HttpRequest, HttpResponse

from shop import upstream_clients as clients
from shop.endpoints.common import bridge, choice_param, int_param, json_response, with_params


def params(request: HttpRequest) -> tuple[int, int, str, str, str]:
    return (
        int_param(request, "k", 3, 1, 64),
        int_param(request, "latency", 10, 0, 10_000),
        choice_param(request, "mode", "sequential", ("sequential", "fanout")),
        choice_param(request, "client", "httpx", ("httpx", "aiohttp")),
        choice_param(request, "dist", "fixed", ("fixed", "exp")),
    )


def body(k: int, mode: str, bodies: list[bytes]) -> dict[str, Any]:
    joined = b"".join(bodies)
    return {"calls": k, "mode": mode, "bytes": len(joined), "digest": hashlib.sha256(joined).hexdigest()[:16]}


def fetch_sync(k: int, latency: int, mode: str, dist: str = "fixed") -> list[bytes]:
    if mode == "fanout":
        return clients.fanout_get(k, latency, dist)
    return [clients.sync_get(latency, dist) for _ in range(k)]


@with_params(params)
def sync_view(request: HttpRequest, parsed: Any) -> HttpResponse:
    k, latency, mode, _client, dist = parsed
    return json_response(body(k, mode, fetch_sync(k, latency, mode, dist)))


@with_params(params)
async def async_view(request: HttpRequest, parsed: Any) -> HttpResponse:
    k, latency, mode, client, dist = parsed
    if mode == "fanout":
        bodies = list(await asyncio.gather(*(clients.async_get(latency, client, dist) for _ in range(k))))
    else:
        bodies = [await clients.async_get(latency, client, dist) for _ in range(k)]
    return json_response(body(k, mode, bodies))


@with_params(params, bridged=True)
async def bridged_view(request: HttpRequest, parsed: Any) -> HttpResponse:
    k, latency, mode, _client, dist = parsed
    if mode == "fanout":
        bodies = await bridge(request, fetch_sync)(k, latency, mode, dist)
    else:
        get = bridge(request, clients.sync_get)
        bodies = [await get(latency, dist) for _ in range(k)]
    return json_response(body(k, mode, bodies))


# No database access here: the async-db variant is the async view.
asyncdb_view = async_view
