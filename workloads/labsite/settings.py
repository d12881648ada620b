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

# The contrib apps are installed whatever the middleware stack, so one seeded database
# (with the lab's user and session, see shop.seed) serves every stack; without their
# middleware nothing in them runs during a request.
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "shop",
]

# The stack the lab sets per cell (LAB_MIDDLEWARE):
# - default: only Security and Common, which support both sync and async modes, so the
#   async variants are not adapted by the stack itself (both are MiddlewareMixin, whose
#   hooks still run through sync_to_async in async mode);
# - sync-audit: default plus one sync-only middleware that touches the database;
# - django-default: what `django-admin startproject` generates (sessions, CSRF, auth,
#   messages, clickjacking) with a logged-in user: the session cookie the lab sends
#   (shop.identity) is loaded and its user read on every request, which is where a real
#   project's requests cross and query.
MIDDLEWARE_STACKS = {
    "default": [
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
    ],
    "sync-audit": [
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
        "shop.middleware.SyncAuditMiddleware",
    ],
    "django-default": [
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ],
}
MIDDLEWARE_STACK = os.environ.get("LAB_MIDDLEWARE", "default")
if MIDDLEWARE_STACK not in MIDDLEWARE_STACKS:
    raise RuntimeError(f"LAB_MIDDLEWARE={MIDDLEWARE_STACK!r}; accepted: {', '.join(MIDDLEWARE_STACKS)}")
MIDDLEWARE = list(MIDDLEWARE_STACKS[MIDDLEWARE_STACK])

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
        # Persistent connections, as a WSGI deployment runs them: Django keeps one
        # connection per thread for the thread's life, so gunicorn's long-lived threads
        # reuse theirs. That does NOT hold under ASGI: Django runs each request's sync code
        # (sync views, sync middleware, the sync ORM behind the a-prefixed methods) in a
        # fresh thread of that request's ThreadSensitiveContext, so every ASGI request that
        # touches the database opens a new connection, whatever CONN_MAX_AGE says. That is
        # real Django behaviour and part of what an ASGI migration costs; the probe counts
        # it per request (db_connections_opened). The documented fix, a connection pool, is
        # LAB_DB_POOL=1 below (PostgreSQL only: SQLite has no pool and ignores it).
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
            # Persistent under WSGI (one connection per gunicorn thread, kept); closed at the end
            # of each request under ASGI, as Django's docs say to run ASGI without a pool: there
            # every request's sync code runs in a fresh thread, so a persistent connection is
            # never reused and stays open until garbage collection, and PostgreSQL runs out of
            # connection slots. SQLite (above) keeps None everywhere: an open file costs no slot,
            # and the committed SQLite runs were measured that way.
            "CONN_MAX_AGE": 0 if os.environ.get("LAB_INTERFACE") == "asgi" else None,
        }
    }
    # LAB_DB_POOL=1: Django's PostgreSQL connection pool (psycopg_pool), the fix Django's
    # docs give for ASGI, where persistent connections cannot be kept per thread. Django
    # requires CONN_MAX_AGE=0 with it: each request returns its connection to the pool at
    # request_finished. The same option gives django-async-backend's async connections an
    # AsyncConnectionPool, so async-db is pooled too. One pool per process, so the size is
    # per server worker: LAB_DB_POOL_SIZE (default 32) covers a 32-thread gthread worker;
    # the throwaway server's max_connections (lab.database.MAX_CONNECTIONS) leaves room for
    # every server of a paired point at once.
    if os.environ.get("LAB_DB_POOL") == "1":
        _pool_size = int(os.environ.get("LAB_DB_POOL_SIZE", "32"))
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"]["OPTIONS"] = {"pool": {"min_size": min(4, _pool_size), "max_size": _pool_size}}
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
