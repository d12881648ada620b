"""HTTP clients for calls to the upstream simulator, one kind per variant.

``sync`` uses one process-wide ``httpx.Client`` shared by all threads (keep-alive pool, as
a real app's module-level session; a per-thread client would be rebuilt for every request
under ASGI, where Django runs each request's sync code in a fresh thread, and building an
httpx client costs milliseconds); ``async`` uses one ``httpx.AsyncClient`` (or
``aiohttp.ClientSession``) per event loop.
The client's own CPU cost differs between these and can decide a comparison by itself,
so it is a labelled parameter (``?client=httpx|aiohttp``), never a hidden default.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

TIMEOUT_S = 30.0
FANOUT_THREADS = 64
# Enough pooled connections for every fan-out thread and server thread at once.
LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=256)
_sync_client: httpx.Client | None = None
_async_clients: dict[tuple[int, str], Any] = {}
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def upstream_url(latency_ms: int, dist: str = "fixed") -> str:
    base = os.environ.get("LAB_UPSTREAM_URL")
    if not base:
        raise RuntimeError("LAB_UPSTREAM_URL is not set: the lab starts the upstream simulator and sets it")
    return f"{base}/?ms={latency_ms}" + ("" if dist == "fixed" else f"&dist={dist}")


def sync_client() -> httpx.Client:
    global _sync_client
    with _pool_lock:
        if _sync_client is None:
            _sync_client = httpx.Client(timeout=TIMEOUT_S, limits=LIMITS)
        return _sync_client


def sync_get(latency_ms: int, dist: str = "fixed") -> bytes:
    response = sync_client().get(upstream_url(latency_ms, dist))
    response.raise_for_status()
    return response.content


def fanout_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(FANOUT_THREADS, thread_name_prefix="fanout")
        return _pool


async def async_get(latency_ms: int, client_kind: str = "httpx", dist: str = "fixed") -> bytes:
    loop = asyncio.get_running_loop()
    key = (id(loop), client_kind)
    client = _async_clients.get(key)
    if client is None:
        if client_kind == "aiohttp":
            import aiohttp

            client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        else:
            client = httpx.AsyncClient(timeout=TIMEOUT_S, limits=LIMITS)
        _async_clients[key] = client
    if client_kind == "aiohttp":
        async with client.get(upstream_url(latency_ms, dist)) as response:
            response.raise_for_status()
            body: bytes = await response.read()
            return body
    response = await client.get(upstream_url(latency_ms, dist))
    response.raise_for_status()
    return bytes(response.content)
