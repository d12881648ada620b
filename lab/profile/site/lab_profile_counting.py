"""What one request of the user's project makes Django do, counted in the server process.

Active only in ``lab profile``'s counting pass (``LAB_PROFILE_COUNT=1``); the measured
servers run without it. Per request: sync<->async crossings (asgiref's ``SyncToAsync`` and
``AsyncToSync`` calls, including Django's own: handler, signals, middleware adaptation,
a-prefixed ORM methods), SQL statements and the wall time spent in them (an
``execute_wrapper`` on every connection Django opens, in whatever thread), database
connections opened, and the request's wall time. Requests run one at a time in that pass,
so the per-process totals divided by the requests sent are per-request figures; the lab
reads the totals from ``/__lab__/counts``.

The same idea as the lab's own ``labsite.crossings``, not that module: it imports the
workloads' HTTP clients (httpx), which a user's project need not have, and it does not
time queries. Standard library, asgiref and Django only.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

FIELDS = ("requests", "sync_to_async", "async_to_sync", "sql_statements", "sql_s", "db_connections_opened", "wall_s")
_current: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar("lab_profile", default=None)
_lock = threading.Lock()
_totals = dict.fromkeys(FIELDS, 0.0)
_installed = False


def totals() -> dict[str, float]:
    with _lock:
        return dict(_totals)


def _add(field: str, amount: float = 1.0) -> None:
    counts = _current.get()
    if counts is not None:
        with _lock:  # threads of one request add concurrently; on 3.13t `+=` can lose updates
            counts[field] += amount


def _timed_sql(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        _add("sql_statements")
        _add("sql_s", time.perf_counter() - started)


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    _add("db_connections_opened")
    _watch(connection)


def _watch(connection: Any) -> None:
    # First in the list: ``connection.execute_wrapper()`` blocks pop the last one on exit.
    if _timed_sql not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, _timed_sql)


def install() -> None:
    """Patch asgiref and hook Django's connections, once per process."""
    global _installed
    if _installed:
        return
    _installed = True
    # By name: this runs in the project's environment; the lab's own (where mypy checks
    # this file) has no Django.
    sync = importlib.import_module("asgiref.sync")
    connections = importlib.import_module("django.db").connections
    connection_created = importlib.import_module("django.db.backends.signals").connection_created

    s2a_call, a2s_call = sync.SyncToAsync.__call__, sync.AsyncToSync.__call__

    @functools.wraps(s2a_call)
    async def counted_s2a(self: Any, *args: Any, **kwargs: Any) -> Any:
        _add("sync_to_async")
        return await s2a_call(self, *args, **kwargs)

    @functools.wraps(a2s_call)
    def counted_a2s(self: Any, *args: Any, **kwargs: Any) -> Any:
        _add("async_to_sync")
        return a2s_call(self, *args, **kwargs)

    sync.SyncToAsync.__call__ = counted_s2a
    sync.AsyncToSync.__call__ = counted_a2s
    connection_created.connect(_on_connection_created, dispatch_uid="lab-profile-counts")
    for connection in connections.all(initialized_only=True):
        _watch(connection)


def _start() -> tuple[dict[str, float], float]:
    return dict.fromkeys(FIELDS, 0.0), time.perf_counter()


def _finish(counts: dict[str, float], started: float) -> None:
    counts["requests"] = 1
    counts["wall_s"] = time.perf_counter() - started
    with _lock:
        for field in FIELDS:
            _totals[field] += counts[field]


def wrap_asgi(app: Callable[..., Any]) -> Callable[..., Any]:
    install()

    async def counting_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        counts, started = _start()
        token = _current.set(counts)
        try:
            await app(scope, receive, send)
        finally:
            _current.reset(token)
            _finish(counts, started)

    return counting_app


class _CountedResponse:
    """Iteration and close() in the request's context: a streamed body and the
    ``request_finished`` receivers (run by close()) count."""

    def __init__(self, result: Iterable[bytes], context: contextvars.Context, counts: dict[str, float], started: float):
        self._result, self._context, self._counts, self._started = result, context, counts, started

    def __iter__(self) -> Iterator[bytes]:
        iterator = self._context.run(iter, self._result)
        while True:
            try:
                yield self._context.run(next, iterator)
            except StopIteration:
                return

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                self._context.run(close)
        finally:
            _finish(self._counts, self._started)


def wrap_wsgi(app: Callable[..., Any]) -> Callable[..., Any]:
    install()

    def counting_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        counts, started = _start()
        context = contextvars.copy_context()
        context.run(_current.set, counts)
        return _CountedResponse(context.run(app, environ, start_response), context, counts, started)

    return counting_app
