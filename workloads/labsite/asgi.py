from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from labsite import crossings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labsite.settings")
application = get_asgi_application()
if crossings.enabled():
    application = crossings.wrap_asgi(application)
