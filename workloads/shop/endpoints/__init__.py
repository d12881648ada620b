"""Endpoint shapes, CPU-bound to I/O-bound, each with sync, async and bridged views.

Each module exposes ``sync_view``, ``async_view``, ``bridged_view`` and ``asyncdb_view``. The three share
parameter parsing and rendering, so for the same parameters they return the same body
byte for byte; only how the work is awaited differs:

- ``sync``: plain ``def`` view (sync ORM, sync HTTP client, fan-out on a thread pool).
- ``async``: ``async def`` view on Django's async ORM/cache API and an async HTTP client.
- ``bridged``: ``async def`` view calling the existing sync helpers one by one through
  ``sync_to_async`` (the half-migrated state); ``?ts=0`` turns thread_sensitive off.
- ``asyncdb``: the ``async-db`` variant, on django-async-backend's real async PostgreSQL
  connection (``Model.async_objects``, ``async_atomic``); PostgreSQL only.
"""

from __future__ import annotations

from shop.endpoints import billing, cpu, crud, external, longpoll, orm, stream, template

ENDPOINTS = {
    "cpu": cpu,
    "orm": orm,
    "template": template,
    "external": external,
    "billing": billing,
    "crud": crud,
    "stream": stream,
    "long-poll": longpoll,
}
