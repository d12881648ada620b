"""Shared helpers: the logged-in check, parameter parsing with clear 400s, JSON bodies, bridging.

Every view goes through ``with_params``, which first makes sure the client is logged in
when the django-default stack is on (``AuthenticationMiddleware`` sets ``request.user``
and ``request.auser``), each variant the way its code would: a sync view reads
``request.user``, an async view awaits ``request.auser()``, a bridged view calls the
sync check through ``sync_to_async``. That runs the session and auth path on every
request, as on a real project's pages, and answers 403 to a client without the lab's
session cookie rather than serving it more cheaply as an anonymous user. Without that
middleware there is no user to check and nothing runs.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, QueryDict

T = TypeVar("T")


class BadParam(ValueError):
    """A query parameter is out of range; the view answers 400 naming it."""


def int_param(
    request: HttpRequest, name: str, default: int, low: int, high: int, *, data: QueryDict | None = None
) -> int:
    """``name`` from the query string (or ``data``, e.g. a POST form), range-checked."""
    raw = (request.GET if data is None else data).get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParam(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise BadParam(f"{name}={value} is out of range; accepted: {low}..{high}")
    return value


def choice_param(request: HttpRequest, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = request.GET.get(name, default)
    if value not in choices:
        raise BadParam(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def json_response(data: Any) -> HttpResponse:
    # sort_keys and fixed separators: identical bytes whatever order the work finished in.
    return HttpResponse(json.dumps(data, sort_keys=True, separators=(",", ":")), content_type="application/json")


def bad_request(exc: BadParam) -> HttpResponse:
    return HttpResponse(json.dumps({"error": str(exc)}), status=400, content_type="application/json")


def not_logged_in() -> HttpResponse:
    return HttpResponse(
        json.dumps({"error": "not logged in: send the lab's session cookie (shop.identity.COOKIE)"}),
        status=403,
        content_type="application/json",
    )


def user_is_authenticated(request: HttpRequest) -> bool:
    """The sync check: reading ``request.user`` loads the session and the user (two queries)."""
    return bool(request.user.is_authenticated)


async def auser_is_authenticated(request: HttpRequest) -> bool:
    user = await request.auser()  # type: ignore[attr-defined]
    return bool(user.is_authenticated)


def with_params(
    parse: Callable[[HttpRequest], Any], *, bridged: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Check the user (django-default stack), then parse the view's parameters; a bad one is a 400 naming it.

    ``bridged`` marks a half-migrated async view, whose user check goes through
    ``sync_to_async`` like its other sync helpers. Keeps a coroutine view a coroutine
    function, so Django still sees it as async.
    """

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest) -> HttpResponse:
                if hasattr(request, "auser"):
                    if bridged:
                        logged_in = await bridge(request, user_is_authenticated)(request)
                    else:
                        logged_in = await auser_is_authenticated(request)
                    if not logged_in:
                        return not_logged_in()
                try:
                    parsed = parse(request)
                except BadParam as exc:
                    return bad_request(exc)
                response: HttpResponse = await view(request, parsed)
                return response

            return async_wrapper

        if bridged:
            raise TypeError(f"{view.__qualname__}: only an async view can be bridged")

        @functools.wraps(view)
        def wrapper(request: HttpRequest) -> HttpResponse:
            if hasattr(request, "user") and not user_is_authenticated(request):
                return not_logged_in()
            try:
                parsed = parse(request)
            except BadParam as exc:
                return bad_request(exc)
            response: HttpResponse = view(request, parsed)
            return response

        return wrapper

    return decorate


def bridge(request: HttpRequest, func: Callable[..., T]) -> Callable[..., Any]:
    """``sync_to_async(func)`` with thread_sensitive from ``?ts=`` (default on, like Django)."""
    return sync_to_async(func, thread_sensitive=request.GET.get("ts", "1") != "0")
