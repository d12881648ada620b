"""Shared helpers: parameter parsing with clear 400s, JSON bodies, bridging."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

T = TypeVar("T")


class BadParam(ValueError):
    """A query parameter is out of range; the view answers 400 naming it."""


def int_param(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    raw = request.GET.get(name)
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


def with_params(parse: Callable[[HttpRequest], Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Parse the view's query parameters first; a bad one is a 400 naming it.

    Keeps a coroutine view a coroutine function, so Django still sees it as async.
    """

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest) -> HttpResponse:
                try:
                    parsed = parse(request)
                except BadParam as exc:
                    return bad_request(exc)
                response: HttpResponse = await view(request, parsed)
                return response

            return async_wrapper

        @functools.wraps(view)
        def wrapper(request: HttpRequest) -> HttpResponse:
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
