"""Settings overlay for ``lab profile``: the user's settings, plus what the lab needs.

Runs inside the project's environment (``DJANGO_SETTINGS_MODULE=lab_profile_settings``,
this directory on ``PYTHONPATH``). It imports the user's settings module
(``LAB_PROFILE_SETTINGS``), copies every upper-case name, then changes only:

- ``DATABASES["default"]``: the lab's throwaway SQLite file (``LAB_PROFILE_DB``) or the
  loopback PostgreSQL URL the lab checked (``LAB_PROFILE_DATABASE_URL``), so a profile
  never writes to the user's own database;
- ``ALLOWED_HOSTS``: plus 127.0.0.1, where the lab's load generator connects;
- ``DEBUG``: off, as in production (with it on Django keeps every query in memory).

The counters (``lab_profile_counting``) are not settings: ``lab_profile_app`` installs
them around the application in the counting pass only.

Standard library only: it must import on whatever Python and Django the project uses.
"""

from __future__ import annotations

import importlib
import os
from typing import Any
from urllib.parse import unquote, urlsplit

_user = importlib.import_module(os.environ["LAB_PROFILE_SETTINGS"])
globals().update({name: getattr(_user, name) for name in dir(_user) if name.isupper()})


def _database() -> dict[str, Any]:
    url = os.environ.get("LAB_PROFILE_DATABASE_URL", "")
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["LAB_PROFILE_DB"]}
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.strip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
    }


DATABASES = {**globals().get("DATABASES", {}), "default": _database()}
ALLOWED_HOSTS = [*globals().get("ALLOWED_HOSTS", []), "127.0.0.1", "localhost"]
DEBUG = False
