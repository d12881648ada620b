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

# Variant name -> (interface, path). The lab keeps the same names (lab.spec.VARIANTS).
VARIANTS: dict[str, tuple[str, str]] = {
    "sync": ("wsgi", "/catalog/sync/"),
    "async": ("asgi", "/catalog/async/"),
    "bridged": ("asgi", "/catalog/bridged/"),
    "sync-on-asgi": ("asgi", "/catalog/sync/"),
}


def wsgi_app() -> Callable[..., Any]:
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def asgi_app() -> Callable[..., Any]:
    from django.core.asgi import get_asgi_application

    return get_asgi_application()


def call_wsgi(app: Callable[..., Any], path: str) -> tuple[int, bytes]:
    status: list[str] = []
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
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

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return int(status[0].split()[0]), body


async def call_asgi(app: Callable[..., Any], path: str) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    sent_body = False
    never = asyncio.Event()  # Django listens for a disconnect until the response is done
    status = 0
    chunks: list[bytes] = []

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
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def render_all() -> dict[str, tuple[int, bytes]]:
    """Every variant's response, for the body-equality check."""
    wsgi, asgi = wsgi_app(), asgi_app()
    out: dict[str, tuple[int, bytes]] = {}
    for variant, (interface, path) in VARIANTS.items():
        if interface == "wsgi":
            out[variant] = call_wsgi(wsgi, path)
        else:
            out[variant] = asyncio.run(call_asgi(asgi, path))
    return out


if __name__ == "__main__":
    import hashlib
    import json
    import sys

    responses = render_all()
    json.dump(
        {
            v: {"status": s, "sha256": hashlib.sha256(b).hexdigest(), "length": len(b)}
            for v, (s, b) in responses.items()
        },
        sys.stdout,
    )
