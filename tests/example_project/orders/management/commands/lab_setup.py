# mypy: ignore-errors
"""Seed the example's rows, make a user, log it in and print the session cookie.

``lab profile`` runs it after ``migrate`` and sends its last stdout line as a Cookie header
with every endpoint marked ``login = true``.
"""

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.core.management.base import BaseCommand

from orders.models import Customer, Order


class Command(BaseCommand):
    help = "Seed orders, create the 'lab' user and print its session cookie."

    def handle(self, *args, **options):
        if not Order.objects.exists():
            customers = Customer.objects.bulk_create(Customer(name=f"customer {i}") for i in range(10))
            Order.objects.bulk_create(
                Order(customer=customers[i % 10], total_cents=100 + 7 * i, reference=f"ORD-{i:05d}") for i in range(50)
            )
        user, _ = get_user_model().objects.get_or_create(username="lab")
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        self.stdout.write(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
