"""Django settings for the lab's workload project.

Everything a run varies comes from environment variables set by the lab, so the same
code runs unchanged under every server and interpreter.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("LAB_DATA_DIR", BASE_DIR / ".data"))

SECRET_KEY = "lab-only-not-secret"  # loopback-only benchmark server
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "labsite.urls"
WSGI_APPLICATION = "labsite.wsgi.application"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = ["shop"]

# By default only middleware that supports both sync and async modes, so the async
# variants are not adapted by the stack itself.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
# The toggle the lab sets per cell: add one sync-only middleware that touches the database.
MIDDLEWARE_STACK = os.environ.get("LAB_MIDDLEWARE", "default")
if MIDDLEWARE_STACK == "sync-audit":
    MIDDLEWARE.append("shop.middleware.SyncAuditMiddleware")
elif MIDDLEWARE_STACK != "default":
    raise RuntimeError(f"LAB_MIDDLEWARE={MIDDLEWARE_STACK!r}; accepted: default, sync-audit")

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {},
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "lab.sqlite3",
        # Persistent connections for every variant: otherwise each request would pay a
        # connect, and the async variants (whose queries run in a worker thread) would
        # pay it differently from the sync ones.
        "CONN_MAX_AGE": None,
        # WAL lets readers run beside the writer; IMMEDIATE transactions take the write lock
        # up front and the timeout waits for it, so concurrent crud requests queue instead of
        # failing with "database is locked".
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 30},
    }
}

# PostgreSQL when the lab passes a URL (--database postgres-local or postgres://...).
DATABASE_URL = os.environ.get("LAB_DATABASE_URL")
if DATABASE_URL:
    from urllib.parse import urlsplit

    _url = urlsplit(DATABASE_URL)
    try:
        import django_async_backend  # noqa: F401 - the async-db variant's backend (Django 6.1 line)

        _engine = "django_async_backend.db.backends.postgresql"
        INSTALLED_APPS.append("django_async_backend")
    except ImportError:
        _engine = "django.db.backends.postgresql"
    DATABASES = {
        "default": {
            "ENGINE": _engine,
            "NAME": _url.path.lstrip("/"),
            "USER": _url.username or "",
            "PASSWORD": _url.password or "",
            "HOST": _url.hostname or "",
            "PORT": str(_url.port or 5432),
            "CONN_MAX_AGE": None,
        }
    }
    # django-async-backend closes its async connections on request_started/finished via
    # an async receiver. Under WSGI no async connection exists, and an async receiver on a
    # sync signal would add an async_to_sync crossing to every sync request, so the lab
    # turns that hook off for WSGI servers (it tells settings which interface serves).
    ASYNC_BACKEND_DISABLE_REQUEST_SIGNALS = os.environ.get("LAB_INTERFACE") == "wsgi"

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Redis when the lab passes a URL (--cache redis-local or redis://...): Django's built-in
# backend on redis-py, pure Python on both interpreters.
if os.environ.get("LAB_CACHE_URL"):
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["LAB_CACHE_URL"]}
    }

LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
