"""Shared helpers: parameter parsing with clear 400s, JSON bodies, bridging."""

from __future__ import annotations

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


def bridge(request: HttpRequest, func: Callable[..., T]) -> Callable[..., Any]:
    """``sync_to_async(func)`` with thread_sensitive from ``?ts=`` (default on, like Django)."""
    return sync_to_async(func, thread_sensitive=request.GET.get("ts", "1") != "0")
