from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from labsite import crossings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labsite.settings")
application = get_wsgi_application()
if crossings.enabled():
    application = crossings.wrap_wsgi(application)
