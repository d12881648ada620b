"""Count sync<->async crossings per request and expose them in ``X-Lab-Crossings``.

Patches asgiref's ``SyncToAsync.__call__`` and ``AsyncToSync.__call__`` so every crossing
counts, including the ones Django's handler, signals, middleware adaptation and async ORM
make (Django's a-prefixed ORM methods run each query through ``sync_to_async``), not
only those in our views. The per-request counter lives in a context variable, which
asgiref copies into the threads it dispatches to.

Enabled only with ``LAB_CROSSINGS=1``: the lab counts in a separate probe pass and
measures with it off; its overhead is measured separately.
"""

from __future__ import annotations

import contextvars
import functools
import os
from collections.abc import Callable
from typing import Any

from asgiref import sync as asgiref_sync

HEADER = "X-Lab-Crossings"
_counts: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("lab_crossings", default=None)
_installed = False


def enabled() -> bool:
    return os.environ.get("LAB_CROSSINGS") == "1"


def install() -> None:
    """Patch asgiref once per process."""
    global _installed
    if _installed:
        return
    _installed = True
    s2a_call = asgiref_sync.SyncToAsync.__call__
    a2s_call = asgiref_sync.AsyncToSync.__call__

    @functools.wraps(s2a_call)
    async def counted_s2a(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts = _counts.get()
        if counts is not None:
            counts[0] += 1
        return await s2a_call(self, *args, **kwargs)

    @functools.wraps(a2s_call)
    def counted_a2s(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts = _counts.get()
        if counts is not None:
            counts[1] += 1
        return a2s_call(self, *args, **kwargs)

    asgiref_sync.SyncToAsync.__call__ = counted_s2a  # type: ignore[method-assign]
    asgiref_sync.AsyncToSync.__call__ = counted_a2s  # type: ignore[method-assign]


def header_value(counts: list[int]) -> str:
    return f"sync_to_async={counts[0]};async_to_sync={counts[1]}"


def wrap_asgi(app: Callable[..., Any]) -> Callable[..., Any]:
    install()

    async def counting_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        counts = [0, 0]
        _counts.set(counts)

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (HEADER.lower().encode(), header_value(counts).encode())]
                message = {**message, "headers": headers}
            await send(message)

        return await app(scope, receive, counting_send)

    return counting_app


def wrap_wsgi(app: Callable[..., Any]) -> Callable[..., Any]:
    install()

    def counting_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        counts = [0, 0]
        token = _counts.set(counts)
        try:

            def counting_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                return start_response(status, [*headers, (HEADER, header_value(counts))], exc_info)

            return app(environ, counting_start)
        finally:
            _counts.reset(token)

    return counting_app
