# mypy: ignore-errors
"""The example's endpoints: an ORM page (sync, and its async 'after' version), a page behind
a login, and a call to a slow upstream service."""

import urllib.request

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse

from orders.models import Order

PAGE = 20


def _page(orders):
    rows = "".join(f"<li>{o.reference}: {o.customer.name} {o.total_cents / 100:.2f}</li>" for o in orders)
    return HttpResponse(f"<ul>{rows}</ul>")


def orders(request):
    return _page(Order.objects.select_related("customer").order_by("id")[:PAGE])


async def orders_async(request):
    # The converted version: the same query through Django's async ORM iteration.
    return _page([o async for o in Order.objects.select_related("customer").order_by("id")[:PAGE]])


@login_required
def account(request):
    return HttpResponse(f"<p>{request.user.username}: {Order.objects.count()} orders</p>")


def upstream(request):
    url = f"{settings.UPSTREAM_URL}/?ms={settings.UPSTREAM_DELAY_MS}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return HttpResponse(response.read(), content_type="application/json")
