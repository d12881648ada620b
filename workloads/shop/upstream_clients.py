"""HTTP clients for calls to the upstream simulator, one kind per variant.

``sync`` uses one ``httpx.Client`` per thread (keep-alive, like a real app's session);
``async`` uses one ``httpx.AsyncClient`` (or ``aiohttp.ClientSession``) per event loop.
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
_local = threading.local()
_async_clients: dict[tuple[int, str], Any] = {}
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def upstream_url(latency_ms: int) -> str:
    base = os.environ.get("LAB_UPSTREAM_URL")
    if not base:
        raise RuntimeError("LAB_UPSTREAM_URL is not set: the lab starts the upstream simulator and sets it")
    return f"{base}/?ms={latency_ms}"


def sync_get(latency_ms: int) -> bytes:
    client = getattr(_local, "client", None)
    if client is None:
        client = _local.client = httpx.Client(timeout=TIMEOUT_S)
    response = client.get(upstream_url(latency_ms))
    response.raise_for_status()
    return response.content


def fanout_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(FANOUT_THREADS, thread_name_prefix="fanout")
        return _pool


async def async_get(latency_ms: int, client_kind: str = "httpx") -> bytes:
    loop = asyncio.get_running_loop()
    key = (id(loop), client_kind)
    client = _async_clients.get(key)
    if client is None:
        if client_kind == "aiohttp":
            import aiohttp

            client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        else:
            client = httpx.AsyncClient(timeout=TIMEOUT_S)
        _async_clients[key] = client
    if client_kind == "aiohttp":
        async with client.get(upstream_url(latency_ms)) as response:
            response.raise_for_status()
            body: bytes = await response.read()
            return body
    response = await client.get(upstream_url(latency_ms))
    response.raise_for_status()
    return bytes(response.content)
