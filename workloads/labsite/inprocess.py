"""Drive the Django handlers in-process (no sockets), for the handler tier, the probe and tests.

Requests go through Django's real WSGIHandler / ASGIHandler (middleware, URL
resolution, response adaptation), so the handler tier measures what a server would
run, minus the server. Every request carries the lab client's cookie
(``shop.identity.COOKIE``), as the lab's load generator does.

``python -m labsite.inprocess`` is the lab's probe: it renders one endpoint in each
variant twice and prints one JSON object, variant -> (all from the second, steady-state
render unless the key ends in ``_cold``):

- ``status``, ``sha256``, ``length``, ``body_head``: the response;
- ``crossings``: ``"sync_to_async=N;async_to_sync=M"``, counted until the app returned
  (ASGI) or the response was closed (WSGI), see ``labsite.crossings``;
- ``sql_statements``, ``upstream_calls``, ``db_connections_opened``, ``db_pool_checkouts``:
  integers, what the request did;
- ``status_cold``, ``crossings_cold``, ``sql_statements_cold``, ``upstream_calls_cold``,
  ``db_connections_opened_cold``, ``db_pool_checkouts_cold``: the same for the first render;
- ``write_lock_wait_us``: only where the response reports it (``crud`` on SQLite).

The first render of each variant starts cold in the ways that change counts: the cache
is cleared and this thread's database connections are closed first, so neither render's
counts depend on which variants ran before it. The second is the steady state a server
reaches after its first request (e.g. ``cache.aget_or_set`` finds the key: 1 crossing
instead of 3).
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labsite.settings")

from shop import identity  # needs no Django

# Variant name -> (interface, view). The lab keeps the same names (lab.spec.VARIANTS).
VARIANTS: dict[str, tuple[str, str]] = {
    "sync": ("wsgi", "sync"),
    "async": ("asgi", "async"),
    "bridged": ("asgi", "bridged"),
    "sync-on-asgi": ("asgi", "sync"),
    "async-db": ("asgi", "asyncdb"),
}
# What every request sends besides the method, path, query and body.
CLIENT_HEADERS: tuple[tuple[str, str], ...] = (("Cookie", identity.COOKIE),)
WRITE_LOCK_HEADER = "x-lab-write-lock-wait-us"


def target(endpoint: str, variant: str, query: str = "") -> tuple[str, str, str]:
    """(interface, path, query string) of one endpoint in one variant."""
    interface, view = VARIANTS[variant]
    return interface, f"/{endpoint}/{view}/", query


def wsgi_app() -> Callable[..., Any]:
    from labsite.wsgi import application

    return application


def asgi_app() -> Callable[..., Any]:
    from labsite.asgi import application

    return application


Response = tuple[int, bytes, dict[str, str]]


def call_wsgi(
    app: Callable[..., Any],
    path: str,
    query: str = "",
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = CLIENT_HEADERS,
    counts: Any = None,
) -> Response:
    """One WSGI request; ``counts`` (a ``labsite.crossings.Counts``) receives its counts."""
    status: list[str] = []
    response_headers: dict[str, str] = {}
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers:
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    if counts is not None:
        environ["lab.counts"] = counts

    def start_response(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        status.append(s)
        response_headers.update((k.lower(), v) for k, v in headers)

    result = app(environ, start_response)
    try:
        content = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return int(status[0].split()[0]), content, response_headers


async def call_asgi(
    app: Callable[..., Any],
    path: str,
    query: str = "",
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = CLIENT_HEADERS,
    counts: Any = None,
) -> Response:
    """One ASGI request; ``counts`` (a ``labsite.crossings.Counts``) receives its counts."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-length", str(len(body)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in headers),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    if counts is not None:
        scope["lab.counts"] = counts
    sent_body = False
    never = asyncio.Event()  # Django listens for a disconnect until the response is done
    status = 0
    chunks: list[bytes] = []
    response_headers: dict[str, str] = {}

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            response_headers.update((k.decode().lower(), v.decode()) for k, v in message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks), response_headers


@dataclass(frozen=True, kw_only=True)
class Rendered:
    """One request's response and what it did (``counts`` is None when counting is off)."""

    status: int
    body: bytes
    headers: dict[str, str]
    counts: Any


@dataclass(frozen=True, kw_only=True)
class RequestShape:
    """What the client sends besides the path: a mix's method, query, body and headers."""

    query: str = ""
    method: str = "GET"
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    anonymous: bool = False  # without the lab client's cookie (not logged in, no CSRF cookie)

    @property
    def all_headers(self) -> tuple[tuple[str, str], ...]:
        return self.headers if self.anonymous else (*CLIENT_HEADERS, *self.headers)


def reset_state() -> None:
    """Start the next request cold where it changes counts: empty cache, no connection here."""
    from django.core.cache import cache
    from django.db import connections

    cache.clear()
    connections.close_all()


def render_twice(
    endpoint: str, shape: RequestShape, variants: tuple[str, ...] | None = None
) -> dict[str, tuple[Rendered, Rendered]]:
    """Every variant's (cold, steady-state) responses with counts, for the probe and tests."""
    from labsite import crossings

    wsgi, asgi = wsgi_app(), asgi_app()
    counting = crossings.enabled()
    out: dict[str, tuple[Rendered, Rendered]] = {}
    loop = asyncio.new_event_loop()
    try:
        for variant in variants or tuple(v for v in VARIANTS if v != "async-db"):
            interface, path, query = target(endpoint, variant, shape.query)
            renders = []
            reset_state()
            for _ in range(2):
                counts = crossings.Counts() if counting else None
                kwargs: dict[str, Any] = {
                    "method": shape.method,
                    "body": shape.body,
                    "headers": shape.all_headers,
                    "counts": counts,
                }
                if interface == "wsgi":
                    status, body, headers = call_wsgi(wsgi, path, query, **kwargs)
                else:
                    status, body, headers = loop.run_until_complete(call_asgi(asgi, path, query, **kwargs))
                renders.append(Rendered(status=status, body=body, headers=headers, counts=counts))
            out[variant] = (renders[0], renders[1])
    finally:
        loop.close()
    return out


def summary(cold: Rendered, steady: Rendered) -> dict[str, Any]:
    """The probe's JSON for one variant (keys in the module docstring)."""
    import hashlib

    out: dict[str, Any] = {
        "status": steady.status,
        "sha256": hashlib.sha256(steady.body).hexdigest(),
        "length": len(steady.body),
        "body_head": steady.body[:200].decode(errors="replace"),
        "status_cold": cold.status,
    }
    for suffix, rendered in (("", steady), ("_cold", cold)):
        counts = rendered.counts
        out[f"crossings{suffix}"] = counts.crossings if counts is not None else ""
        if counts is not None:
            for key, value in counts.as_dict().items():
                if key not in ("sync_to_async", "async_to_sync"):
                    out[f"{key}{suffix}"] = value
    if WRITE_LOCK_HEADER in steady.headers:
        out["write_lock_wait_us"] = int(steady.headers[WRITE_LOCK_HEADER])
    return out


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"header {text!r} is not 'Name: value'")
    return name.strip(), value.strip()


def main() -> None:
    import argparse
    import json
    import sys

    # The probe is the counting pass: count unless told otherwise (before the apps load).
    os.environ.setdefault("LAB_CROSSINGS", "1")
    import django

    parser = argparse.ArgumentParser(description="Render one endpoint in every variant twice; print JSON.")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--query", default="")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default="", help="request body (UTF-8 text)")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--anonymous", action="store_true", help="leave out the lab client's cookie")
    parser.add_argument("--variants", default="", help="comma-separated (default: all but async-db)")
    args = parser.parse_args()
    shape = RequestShape(
        query=args.query,
        method=args.method.upper(),
        body=args.body.encode(),
        headers=tuple(parse_header(h) for h in args.header),
        anonymous=args.anonymous,
    )
    django.setup()
    rendered = render_twice(args.endpoint, shape, tuple(v for v in args.variants.split(",") if v) or None)
    json.dump({variant: summary(cold, steady) for variant, (cold, steady) in rendered.items()}, sys.stdout)


if __name__ == "__main__":
    main()
