# mypy: ignore-errors
# (Django is installed in the project's own environments, not in the lab's.)
"""Settings of the example project, as a team's project would have them."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "example-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["example.test"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "orders",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "example.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
LOGIN_URL = "/accounts/login/"
# The slow dependency the /upstream/ view calls (the lab points it at its simulator).
UPSTREAM_URL = os.environ.get("EXAMPLE_UPSTREAM_URL", "http://127.0.0.1:9")
UPSTREAM_DELAY_MS = 20
