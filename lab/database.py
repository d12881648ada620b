"""The workload database: embedded SQLite by default, or PostgreSQL.

``--database`` accepts ``sqlite``, ``postgres-local`` (the lab starts a throwaway
PostgreSQL from Debian's ``postgresql`` package in a temporary directory on a loopback
port and stops it afterwards) or a ``postgres://USER[:PASSWORD]@HOST[:PORT]/DB`` URL of a
server on this machine. Hands on the URL the workloads read from ``LAB_DATABASE_URL``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from lab.errors import LabError, SpecError
from lab.proc import capture, child_env, managed, run_logged, tail
from lab.serve import require_loopback

DatabaseKind = Literal["sqlite", "postgres"]
ACCEPTED = "sqlite, postgres-local, or postgres://USER@127.0.0.1:PORT/DB"
PG_HINT = "install Debian's postgresql package (apt install postgresql) or pass --database postgres://..."


@dataclass(frozen=True, kw_only=True)
class DatabaseChoice:
    kind: DatabaseKind
    managed: bool = False  # the lab starts and stops the server
    url: str = ""  # for an external server

    @property
    def label(self) -> str:
        if self.kind == "sqlite":
            return "sqlite"
        return "postgres-local" if self.managed else f"postgres {redact(self.url)}"



# A paired point keeps every server of both interpreters up at once (up to 2 x 4 shapes, ~10
# processes), each holding its own persistent or pooled connections (a gthread worker one
# per thread, a pool up to LAB_DB_POOL_SIZE): 200 ran out on 2026-12-01 and every variant's
# requests failed with HTTP 500. A throwaway server's idle slots cost little memory.
MAX_CONNECTIONS = 1000

def redact(url: str) -> str:
    return re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", url)


def parse_database(value: str) -> DatabaseChoice:
    """Validate ``--database``; load only ever goes to this machine, so the server must too."""
    if value == "sqlite":
        return DatabaseChoice(kind="sqlite")
    if value == "postgres-local":
        return DatabaseChoice(kind="postgres", managed=True)
    parts = urlsplit(value)
    if parts.scheme not in ("postgres", "postgresql"):
        raise SpecError(f"database {redact(value)!r} is not supported; accepted: {ACCEPTED}")
    if not parts.path.strip("/"):
        raise SpecError(f"database URL {redact(value)!r} names no database; accepted: {ACCEPTED}")
    require_loopback("database", parts.hostname or "")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise SpecError(f"database URL {redact(value)!r} has an invalid port") from None
    return DatabaseChoice(kind="postgres", url=value)


def find_pg_bin() -> Path:
    """Directory with initdb and postgres: Debian's versioned dirs first, then PATH."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    raise LabError(f"PostgreSQL server binaries (initdb, postgres) not found; {PG_HINT}")


@contextlib.contextmanager
def local_postgres(work: Path, port: int) -> Iterator[str]:
    """A throwaway PostgreSQL server for one run; yields its URL and always stops it.

    PostgreSQL refuses to run as root, so as root the server runs as the ``postgres``
    user that Debian's package creates.
    """
    bin_dir = find_pg_bin()
    # Its own directory under the system temp dir: the postgres user must be able to reach
    # it, which private parents (pytest's, mkdtemp's) would prevent.
    base = Path(tempfile.mkdtemp(prefix="lab-postgres-"))
    try:
        with _server(bin_dir, base, work, port) as url:
            yield url
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def _server(bin_dir: Path, base: Path, work: Path, port: int) -> Iterator[str]:
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir(parents=True, exist_ok=True)
    as_user: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            raise LabError("running as root needs runuser to start PostgreSQL as the postgres user")
        as_user = [runuser, "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    log_path = work / "logs" / "postgres.log"
    env = child_env({"LC_ALL": "C.UTF-8"})
    code = run_logged(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "lab", "--auth=trust", "-E", "UTF8", "--no-sync"],
        log_path=log_path,
        env=env,
    )
    if code != 0:
        raise LabError(f"initdb failed (exit {code}): {tail(log_path, 3)}")
    server_cmd = [
        *as_user,
        str(bin_dir / "postgres"),
        "-D",
        str(data),
        "-p",
        str(port),
        "-k",
        str(sockets),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"max_connections={MAX_CONNECTIONS}",
    ]
    with managed(server_cmd, name="postgres", log_path=log_path, env=env, stop_signal=2) as server:
        server.wait_ready(lambda: _pg_ready(bin_dir, port), timeout=60)
        yield f"postgres://lab@127.0.0.1:{port}/postgres"


def _pg_ready(bin_dir: Path, port: int) -> bool:
    cmd = [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"]
    done = capture(cmd, env=child_env(), timeout=10)
    return done.returncode == 0
