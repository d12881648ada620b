"""Create and seed the workload database deterministically (same rows on every run).

Run as ``python -m shop.seed`` with ``DJANGO_SETTINGS_MODULE`` set; replaces any
existing database so runs start from identical data. Besides the shop's rows it creates
the lab's user and a logged-in session under the fixed key of ``shop.identity``, so the
django-default middleware stack sees a logged-in client on every request that sends
``identity.COOKIE``.
"""

from __future__ import annotations

import os
import random

AUTHORS = 50
BOOKS = 2_000
ACCOUNTS = 200
SEED = 20261130


def seed() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labsite.settings")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction

    from shop.models import Account, Author, Book, Plan

    connection.close()
    if connection.vendor == "sqlite":
        db_path = settings.DATABASES["default"]["NAME"]
        os.makedirs(os.path.dirname(db_path), exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(f"{db_path}{suffix}"):
                os.remove(f"{db_path}{suffix}")
    else:
        with connection.cursor() as cursor:
            for table in connection.introspection.table_names(cursor):
                cursor.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    call_command("migrate", run_syncdb=True, verbosity=0)
    rng = random.Random(SEED)
    with transaction.atomic():
        authors = Author.objects.bulk_create(
            Author(name=f"Author {i:03d}", country=rng.choice(["DE", "FR", "GB", "NL", "US"])) for i in range(AUTHORS)
        )
        Book.objects.bulk_create(
            Book(
                title=f"Book {i:05d}",
                author=authors[rng.randrange(AUTHORS)],
                price_cents=rng.randrange(500, 9_000),
                year=rng.randrange(1950, 2026),
            )
            for i in range(BOOKS)
        )
        plans = Plan.objects.bulk_create(
            Plan(name=name, monthly_cents=cents) for name, cents in (("free", 0), ("team", 2_900), ("business", 9_900))
        )
        Account.objects.bulk_create(
            Account(name=f"Account {i:04d}", plan=plans[rng.randrange(len(plans))], seats=rng.randrange(1, 200))
            for i in range(ACCOUNTS)
        )
        log_in_lab_client()


def log_in_lab_client() -> None:
    """The lab's user and its session row under ``identity.SESSION_KEY``, as a login would leave them."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from shop import identity

    user = get_user_model()(username=identity.USERNAME, email="lab@example.invalid")
    user.set_unusable_password()  # nobody logs in with it; no password hashing at seed time
    user.save()
    session = SessionStore()
    session.update(
        {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
    )
    # A year: far beyond any run (the default two weeks could lapse under a reused database).
    session.set_expiry(365 * 24 * 3600)
    session._session_key = identity.SESSION_KEY  # fixed, so the lab's Cookie header is a constant
    session.save(must_create=True)


if __name__ == "__main__":
    seed()
