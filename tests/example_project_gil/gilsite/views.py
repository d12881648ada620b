# mypy: ignore-errors
"""One view that uses the C extension, so every server process imports it."""

from django.http import JsonResponse

# Imported with the URLconf (the first request): on 3.13t this re-enables the GIL.
from gilpkg import checksum as _checksum

_PAYLOAD = b"free-threading " * 64


def checksum(request):
    return JsonResponse({"checksum": _checksum(_PAYLOAD)})
