"""The workload's cache: Django's local-memory cache by default, or Redis.

``--cache`` accepts ``locmem``, ``redis-local`` (the lab starts a throwaway redis-server
on a loopback port with persistence off and stops it afterwards) or a
``redis://HOST:PORT/DB`` URL of a server on this machine. Hands on the URL the workloads
read from ``LAB_CACHE_URL`` (Django's built-in RedisCache backend, redis-py in pure Python
on both interpreters).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from lab.errors import LabError, SpecError
from lab.proc import child_env, managed
from lab.serve import require_loopback, responds_tcp

ACCEPTED = "locmem, redis-local, or redis://127.0.0.1:PORT/DB"


@dataclass(frozen=True, kw_only=True)
class CacheChoice:
    kind: str  # "locmem" or "redis"
    managed: bool = False
    url: str = ""

    @property
    def label(self) -> str:
        if self.kind == "locmem":
            return "locmem"
        return "redis-local" if self.managed else f"redis {self.url}"


LOCMEM = CacheChoice(kind="locmem")


def parse_cache(value: str) -> CacheChoice:
    if value == "locmem":
        return LOCMEM
    if value == "redis-local":
        return CacheChoice(kind="redis", managed=True)
    parts = urlsplit(value)
    if parts.scheme != "redis":
        raise SpecError(f"cache {value!r} is not supported; accepted: {ACCEPTED}")
    require_loopback("cache", host=parts.hostname or "")
    return CacheChoice(kind="redis", url=value)


@contextlib.contextmanager
def local_redis(work: Path, port: int) -> Iterator[str]:
    """A throwaway redis-server (no persistence) for one run; yields its URL."""
    server = shutil.which("redis-server")
    if server is None:
        raise LabError("redis-server not found; install Debian's redis-server package or pass --cache redis://...")
    cmd = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with managed(cmd, name="redis", log_path=work / "logs" / "redis.log", env=child_env()) as redis:
        redis.wait_ready(lambda: responds_tcp(port), timeout=30)
        yield f"redis://127.0.0.1:{port}/0"
