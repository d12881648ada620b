# mypy: ignore-errors
# (Django is installed in the project's own environments, not in the lab's.)
"""Settings of the GIL example: no apps, no middleware, one view."""

SECRET_KEY = "example-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["example.test"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "gilsite.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
