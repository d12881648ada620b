"""`cpu`: pure-Python business logic and serialization, no I/O (``?work=N`` items)."""

from __future__ import annotations

import hashlib
from typing import Any

from django.http import HttpRequest, HttpResponse

from shop.endpoints.common import bridge, int_param, json_response, with_params

ROLES = ("viewer", "editor", "admin", "billing")
ACTIONS = ("read", "write", "delete", "invoice")
RULES = {
    "viewer": {"read"},
    "editor": {"read", "write"},
    "admin": {"read", "write", "delete"},
    "billing": {"read", "invoice"},
}


def compute(work: int) -> dict[str, Any]:
    """Permission checks and a JSON document for ``work`` items (deterministic)."""
    items = []
    allowed = 0
    for i in range(work):
        role, action = ROLES[i % 4], ACTIONS[(i * 7) % 4]
        ok = action in RULES[role]
        allowed += ok
        items.append({"id": i, "role": role, "action": action, "allowed": ok, "score": (i * 2654435761) % 1000})
    digest = hashlib.sha256(repr(items).encode()).hexdigest()[:16]
    return {"work": work, "allowed": allowed, "digest": digest, "items": items[:5]}


def params(request: HttpRequest) -> int:
    return int_param(request, "work", 200, 1, 100_000)


@with_params(params)
def sync_view(request: HttpRequest, work: Any) -> HttpResponse:
    return json_response(compute(work))


@with_params(params)
async def async_view(request: HttpRequest, work: Any) -> HttpResponse:
    return json_response(compute(work))


@with_params(params, bridged=True)
async def bridged_view(request: HttpRequest, work: Any) -> HttpResponse:
    return json_response(await bridge(request, compute)(work))


# No database access here: the async-db variant is the async view.
asyncdb_view = async_view
