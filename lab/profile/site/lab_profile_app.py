"""The application the servers load under ``lab profile``: the user's own, wrapped.

``lab_profile_app:wsgi`` and ``lab_profile_app:asgi`` load the user's WSGI and ASGI
applications (``LAB_PROFILE_WSGI``, ``LAB_PROFILE_ASGI``: ``module:attribute``) on first
access, so a server imports only the one it serves. The wrapper answers the lab's own
paths under ``/__lab__/`` (``ready``, and ``counts`` in the counting pass) and passes every
other request to the user's application untouched. With ``LAB_PROFILE_COUNT=1`` it also
counts each request (``lab_profile_counting``).

Why a wrapper around the application rather than a middleware: Django's ASGI handler
crosses between sync and async before the first middleware runs (``request_started``)
and after the last one returned (``response.close``, ``request_finished``); only code
around the whole application sees every crossing a request costs.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from typing import Any

READY = "/__lab__/ready"
COUNTS = "/__lab__/counts"
_loaded: dict[str, Callable[..., Any]] = {}


def _totals() -> bytes:
    if os.environ.get("LAB_PROFILE_COUNT") != "1":
        return b"{}"
    return json.dumps(importlib.import_module("lab_profile_counting").totals()).encode()


def _load(name: str) -> Callable[..., Any]:
    module, _, attribute = os.environ[f"LAB_PROFILE_{name.upper()}"].partition(":")
    app: Callable[..., Any] = getattr(importlib.import_module(module), attribute)
    if os.environ.get("LAB_PROFILE_COUNT") == "1":
        # By name, as the servers find it: this directory is on PYTHONPATH, not a package.
        counting = importlib.import_module("lab_profile_counting")
        app = counting.wrap_wsgi(app) if name == "wsgi" else counting.wrap_asgi(app)
    return app


def _wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    path = environ.get("PATH_INFO", "")
    if path in (READY, COUNTS):
        body = b"ok" if path == READY else _totals()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    return _loaded["wsgi"](environ, start_response)


async def _asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope.get("path", "")
    if scope["type"] == "http" and path in (READY, COUNTS):
        body = b"ok" if path == READY else _totals()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await _loaded["asgi"](scope, receive, send)


def __getattr__(name: str) -> Callable[..., Any]:
    if name not in ("wsgi", "asgi"):
        raise AttributeError(name)
    if name not in _loaded:
        _loaded[name] = _load(name)
    return _wsgi if name == "wsgi" else _asgi
