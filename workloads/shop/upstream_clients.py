"""HTTP clients for calls to the upstream simulator, one kind per variant.

``sync`` takes an ``httpx.Client`` from a process-wide pool of idle clients and puts it back
after the call, so each client (and its keep-alive connections) is used by one thread at a
time. Not one shared client: on 3.13t, threads sharing one client crashed in httpcore 1.0.9
(``HTTP11Connection.has_expired`` reads ``_expire_at`` twice without a lock: "TypeError: '>'
not supported between 'float' and 'NoneType'"). Not one client per thread either: under
ASGI Django runs each request's sync code in a fresh thread, so a per-thread client would be
rebuilt for every request, and building one costs milliseconds. ``async`` uses one
``httpx.AsyncClient`` (or ``aiohttp.ClientSession``) per event loop.
The client's own CPU cost differs between these and can decide a comparison by itself,
so it is a labelled parameter (``?client=httpx|aiohttp``), never a hidden default.

Every call reports itself to ``call_observer`` when one is set (the probe's counters, so the
lab can check that every variant of a point makes the same upstream calls).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

TIMEOUT_S = 30.0
FANOUT_THREADS = 64
# Enough pooled connections for every concurrent call of an async client at once.
LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=256)
_idle_clients: queue.SimpleQueue[httpx.Client] = queue.SimpleQueue()
_async_clients: dict[tuple[int, str], Any] = {}
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
# Set by labsite.crossings when counting is on; None while measuring.
call_observer: Callable[[], None] | None = None


def upstream_url(latency_ms: int, dist: str = "fixed") -> str:
    base = os.environ.get("LAB_UPSTREAM_URL")
    if not base:
        raise RuntimeError("LAB_UPSTREAM_URL is not set: the lab starts the upstream simulator and sets it")
    return f"{base}/?ms={latency_ms}" + ("" if dist == "fixed" else f"&dist={dist}")


def sync_get(latency_ms: int, dist: str = "fixed") -> bytes:
    if call_observer is not None:
        call_observer()
    try:
        client = _idle_clients.get_nowait()
    except queue.Empty:
        client = httpx.Client(timeout=TIMEOUT_S)
    try:
        response = client.get(upstream_url(latency_ms, dist))
        response.raise_for_status()
        return response.content
    finally:
        _idle_clients.put(client)


def fanout_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(FANOUT_THREADS, thread_name_prefix="fanout")
        return _pool


def fanout_get(k: int, latency_ms: int, dist: str = "fixed") -> list[bytes]:
    """K concurrent ``sync_get`` calls on the fan-out pool, in order.

    Each call runs in a copy of the caller's context, as ``asyncio.to_thread`` and asgiref
    do, so request-scoped context variables (the probe's counters) reach the pool threads.
    """
    pool = fanout_pool()
    futures = [pool.submit(contextvars.copy_context().run, sync_get, latency_ms, dist) for _ in range(k)]
    return [f.result() for f in futures]


async def async_get(latency_ms: int, client_kind: str = "httpx", dist: str = "fixed") -> bytes:
    if call_observer is not None:
        call_observer()
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
