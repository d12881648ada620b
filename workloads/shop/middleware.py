"""A realistic sync-only middleware, switched on with ``LAB_MIDDLEWARE=sync-audit``.

Request auditing as many Django apps have it: look up the account the request acts for
(one database read) and note the path. It declares ``async_capable = False``, as most
third-party middleware written before Django 3.1 effectively does, so under ASGI Django
must adapt around it and every async view pays for the switch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from shop.models import Account

AUDITED_ACCOUNT_ID = 1
seen_paths: Counter[str] = Counter()


class SyncAuditMiddleware:
    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.audit_account = Account.objects.only("id", "name").get(pk=AUDITED_ACCOUNT_ID)  # type: ignore[attr-defined]
        seen_paths[request.path] += 1
        return self.get_response(request)
