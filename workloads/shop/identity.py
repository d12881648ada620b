"""The logged-in client the lab plays, as constants a load generator can send unchanged.

With ``LAB_MIDDLEWARE=django-default`` the views serve a logged-in user only, the way a
real project's pages do. ``shop.seed`` stores a session under ``SESSION_KEY`` for the user
``USERNAME``, so every request can carry the same ``Cookie`` header (``COOKIE``) instead of
logging in first. ``CSRF_TOKEN`` is the CSRF secret a browser would hold in its
``csrftoken`` cookie; Django accepts it unmasked in ``X-CSRFToken`` (``CSRF_HEADERS``), which
is how JavaScript clients send it. Without the django-default stack no middleware reads the
cookie, so the lab can send it on every request of every cell: the request bytes then
differ between stacks only by what the stack does with them.

No Django import here: the lab's own tests read these constants.
"""

from __future__ import annotations

import os

# Session keys are 32 characters of [a-z0-9] when Django makes them; any key of 8 or more
# characters is accepted. LAB_SESSION_COOKIE lets the lab choose the key (seed and
# requests must then both see it).
DEFAULT_SESSION_KEY = "labsession0000000000000000000001"
SESSION_KEY = os.environ.get("LAB_SESSION_COOKIE") or DEFAULT_SESSION_KEY
# 32 characters of [a-zA-Z0-9]: the length and alphabet of Django's CSRF secret.
CSRF_TOKEN = "labcsrf0000000000000000000000001"
USERNAME = "lab"
COOKIE = f"sessionid={SESSION_KEY}; csrftoken={CSRF_TOKEN}"
CSRF_HEADERS = {"X-CSRFToken": CSRF_TOKEN}
