"""Drive the Django handlers in-process (no sockets), for the handler tier and tests.

Requests go through Django's real WSGIHandler / ASGIHandler (middleware, URL
resolution, response adaptation), so the handler tier measures what a server would
run, minus the server.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labsite.settings")

# Variant name -> (interface, view). The lab keeps the same names (lab.spec.VARIANTS).
VARIANTS: dict[str, tuple[str, str]] = {
    "sync": ("wsgi", "sync"),
    "async": ("asgi", "async"),
    "bridged": ("asgi", "bridged"),
    "sync-on-asgi": ("asgi", "sync"),
    "async-db": ("asgi", "asyncdb"),
}


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


def call_wsgi(app: Callable[..., Any], path: str, query: str = "") -> Response:
    status: list[str] = []
    response_headers: dict[str, str] = {}
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }

    def start_response(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        status.append(s)
        response_headers.update((k.lower(), v) for k, v in headers)

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return int(status[0].split()[0]), body, response_headers


async def call_asgi(app: Callable[..., Any], path: str, query: str = "") -> Response:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    sent_body = False
    never = asyncio.Event()  # Django listens for a disconnect until the response is done
    status = 0
    chunks: list[bytes] = []
    response_headers: dict[str, str] = {}

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": b"", "more_body": False}
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


def render_all(endpoint: str, query: str = "", variants: tuple[str, ...] | None = None) -> dict[str, Response]:
    """Every variant's response for one endpoint, for body-equality and crossing checks."""
    wsgi, asgi = wsgi_app(), asgi_app()
    out: dict[str, Response] = {}
    loop = asyncio.new_event_loop()
    try:
        for variant in variants or tuple(v for v in VARIANTS if v != "async-db"):
            interface, path, q = target(endpoint, variant, query)
            if interface == "wsgi":
                out[variant] = call_wsgi(wsgi, path, q)
            else:
                out[variant] = loop.run_until_complete(call_asgi(asgi, path, q))
    finally:
        loop.close()
    return out


def main() -> None:
    import argparse
    import hashlib
    import json
    import sys

    import django

    parser = argparse.ArgumentParser(description="Render one endpoint in every variant; print digests as JSON.")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--query", default="")
    parser.add_argument("--variants", default="", help="comma-separated (default: all but async-db)")
    args = parser.parse_args()
    django.setup()
    responses = render_all(args.endpoint, args.query, tuple(v for v in args.variants.split(",") if v) or None)
    summary = {
        variant: {
            "status": status,
            "sha256": hashlib.sha256(body).hexdigest(),
            "length": len(body),
            "crossings": headers.get("x-lab-crossings", ""),
            "body_head": body[:200].decode(errors="replace"),
        }
        for variant, (status, body, headers) in responses.items()
    }
    json.dump(summary, sys.stdout)


if __name__ == "__main__":
    main()
