"""Count what one request makes Django do: sync<->async crossings, SQL, upstream calls, connections.

Patches asgiref's ``SyncToAsync.__call__`` and ``AsyncToSync.__call__`` so every crossing
counts, including the ones Django's handler, signals, middleware adaptation and async ORM
make (Django's a-prefixed ORM methods run each query through ``sync_to_async``), not
only those in our views. SQL statements are counted by an execute wrapper put on every
database connection Django opens (``connection_created``), in whatever thread; the sync
and the async backend (django-async-backend) both run their wrappers. Upstream HTTP calls
are counted by ``shop.upstream_clients`` through its ``call_observer`` hook. Connections:
``db_connections_opened`` counts new database sessions Django opened for the request,
``db_pool_checkouts`` counts connections it took from Django's pool instead (the pool
opens its own connections in background threads, outside any request).

The per-request ``Counts`` lives in a context variable, which asgiref copies into the
threads it dispatches to (and ``shop.upstream_clients`` into its fan-out threads).

Counting lasts until the ASGI app returns, or until the WSGI response iterable is closed,
so it includes what runs after the response is sent: Django's ``sync_to_async(response.close)``
and the ``request_finished`` receivers. That is why the counts cannot travel in a response
header; a caller that wants them passes a ``Counts`` under ``COUNTS_KEY`` in the ASGI scope
or WSGI environ (``labsite.inprocess`` does), and the latest finished request's counts are
kept in ``last`` as well.

Enabled only with ``LAB_CROSSINGS=1``: the lab counts in a separate probe pass and
measures with it off; its overhead is measured separately.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from asgiref import sync as asgiref_sync

COUNTS_KEY = "lab.counts"
_current: contextvars.ContextVar[Counts | None] = contextvars.ContextVar("lab_counts", default=None)
_installed = False
last: Counts | None = None


@dataclasses.dataclass(kw_only=True)
class Counts:
    """What one request did. Mutable: the request's threads add to it as they go."""

    sync_to_async: int = 0
    async_to_sync: int = 0
    sql_statements: int = 0
    upstream_calls: int = 0
    db_connections_opened: int = 0
    db_pool_checkouts: int = 0
    # Fan-out threads add concurrently; on a free-threaded build ``+=`` can lose updates.
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, field: str) -> None:
        with self._lock:
            setattr(self, field, getattr(self, field) + 1)

    @property
    def crossings(self) -> str:
        """The probe's ``crossings`` text, the format the lab parses."""
        return f"sync_to_async={self.sync_to_async};async_to_sync={self.async_to_sync}"

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}


def enabled() -> bool:
    return os.environ.get("LAB_CROSSINGS") == "1"


def note(field: str) -> None:
    """Add one to ``field`` of the current request's counts (no-op outside a counted request)."""
    counts = _current.get()
    if counts is not None:
        counts.add(field)


def _count_sql(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    # One per execute()/executemany() call: what the request sends, whatever the batch size.
    note("sql_statements")
    return execute(sql, params, many, context)


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    # Django's PostgreSQL backends (sync and django-async-backend) have a ``pool`` property;
    # when it is set, connect() took a connection from the pool rather than opening one.
    note("db_pool_checkouts" if getattr(connection, "pool", None) else "db_connections_opened")
    _watch(connection)


def _watch(connection: Any) -> None:
    # First in the list: ``connection.execute_wrapper()`` blocks pop the last wrapper on exit,
    # and a connection may be created inside one.
    if _count_sql not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, _count_sql)


def install() -> None:
    """Patch asgiref and hook Django's connections and the upstream clients, once per process."""
    global _installed
    if _installed:
        return
    _installed = True
    s2a_call = asgiref_sync.SyncToAsync.__call__
    a2s_call = asgiref_sync.AsyncToSync.__call__

    @functools.wraps(s2a_call)
    async def counted_s2a(self: Any, *args: Any, **kwargs: Any) -> Any:
        note("sync_to_async")
        return await s2a_call(self, *args, **kwargs)

    @functools.wraps(a2s_call)
    def counted_a2s(self: Any, *args: Any, **kwargs: Any) -> Any:
        note("async_to_sync")
        return a2s_call(self, *args, **kwargs)

    asgiref_sync.SyncToAsync.__call__ = counted_s2a  # type: ignore[method-assign]
    asgiref_sync.AsyncToSync.__call__ = counted_a2s  # type: ignore[method-assign]

    from django.db import connections
    from django.db.backends.signals import connection_created
    from shop import upstream_clients

    connection_created.connect(_on_connection_created, dispatch_uid="lab-counts")
    for connection in connections.all(initialized_only=True):
        _watch(connection)
    upstream_clients.call_observer = functools.partial(note, "upstream_calls")


def _finish(counts: Counts) -> None:
    global last
    last = counts


def wrap_asgi(app: Callable[..., Any]) -> Callable[..., Any]:
    install()

    async def counting_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        counts = scope.get(COUNTS_KEY) or Counts()
        token = _current.set(counts)
        try:
            await app(scope, receive, send)
        finally:
            _current.reset(token)
            _finish(counts)

    return counting_app


class _CountedResponse:
    """A WSGI response iterable whose iteration and close() run in the request's context,
    so a streaming body and the ``request_finished`` receivers (run by close()) count."""

    def __init__(self, result: Iterable[bytes], context: contextvars.Context, counts: Counts) -> None:
        self._result = result
        self._context = context
        self._counts = counts

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
            _finish(self._counts)


def wrap_wsgi(app: Callable[..., Any]) -> Callable[..., Any]:
    install()

    def counting_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        counts = environ.get(COUNTS_KEY) or Counts()
        context = contextvars.copy_context()
        context.run(_current.set, counts)
        return _CountedResponse(context.run(app, environ, start_response), context, counts)

    return counting_app
