"""Serve stage: start a workload server on a loopback port and stop it cleanly.

The server config is part of every result. Both interpreters get the same stack:
gunicorn's ``gthread`` worker for WSGI, uvicorn with the pure asyncio loop and h11
parser for ASGI (uvloop and httptools have no cp313t wheels, and an extension without
free-threading support would re-enable the GIL).
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import ipaddress
import signal
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from lab.envs import WORKLOADS_DIR, WorkloadEnv
from lab.errors import ServerStartFailed, SpecError
from lab.proc import ManagedProcess, child_env, managed

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
ServerKind = Literal["gunicorn-gthread", "uvicorn"]


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    kind: ServerKind
    workers: int = 1
    threads: int = 1
    loop: str = "asyncio"
    http: str = "h11"

    @property
    def stop_signal(self) -> int:
        # gunicorn stops gracefully on SIGTERM. uvicorn re-raises SIGTERM after its
        # shutdown, which kills it before atexit handlers (our GIL report) run; on
        # SIGINT it ends with KeyboardInterrupt, so atexit still runs.
        return signal.SIGTERM if self.kind == "gunicorn-gthread" else signal.SIGINT

    @property
    def label(self) -> str:
        if self.kind == "gunicorn-gthread":
            return f"gunicorn gthread {self.workers}x{self.threads}"
        return f"uvicorn {self.workers}w {self.loop}+{self.http}"

    def metadata(self) -> dict[str, Any]:
        return {f"server_{k}": v for k, v in asdict(self).items()}


def server_for(interface: str, threads: int) -> ServerConfig:
    if interface == "wsgi":
        return ServerConfig(kind="gunicorn-gthread", workers=1, threads=threads)
    return ServerConfig(kind="uvicorn", workers=1)


def command(config: ServerConfig, python: Path, port: int) -> list[str]:
    if config.kind == "gunicorn-gthread":
        return [
            str(python),
            "-m",
            "gunicorn",
            "labsite.wsgi:application",
            "--worker-class",
            "gthread",
            "--workers",
            str(config.workers),
            "--threads",
            str(config.threads),
            "--bind",
            f"{HOST}:{port}",
            "--log-level",
            "warning",
            # Keep-alive long enough for the load generator's persistent connections.
            "--keep-alive",
            "75",
            "--backlog",
            "2048",
        ]
    return [
        str(python),
        "-m",
        "uvicorn",
        "labsite.asgi:application",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(config.workers),
        "--loop",
        config.loop,
        "--http",
        config.http,
        "--lifespan",
        "off",
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-keep-alive",
        "75",
        "--backlog",
        "2048",
    ]


def require_loopback(what: str, host: str) -> None:
    """The lab only talks to servers on this machine: refuse any other host."""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        raise SpecError(f"{what} host {host!r} is not a loopback address; the lab only uses servers on this machine")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def check_port_free(port: int) -> None:
    if not 1 <= port <= 65535:
        raise SpecError(f"port {port} is out of range; accepted: 1..65535")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SpecError(
                    f"port {port} on {HOST} is already in use; pick another with --port or omit --port"
                ) from None
            raise


def responds_tcp(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def responds(port: int, path: str = "/health/") -> bool:
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
        conn.request("GET", path)
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


@contextlib.contextmanager
def running_server(
    config: ServerConfig,
    env: WorkloadEnv,
    *,
    port: int | None,
    extra_env: dict[str, str],
    log_path: Path,
    cpus: frozenset[int] | None = None,
) -> Iterator[tuple[ManagedProcess, int]]:
    """Start the server, wait until it answers, yield it; always stop and reap it."""
    if port is None:
        port = free_port()
    else:
        check_port_free(port)
    proc_env = child_env({"PYTHONPATH": str(WORKLOADS_DIR), **extra_env})
    with managed(
        command(config, env.python, port),
        name=config.label,
        log_path=log_path,
        env=proc_env,
        cwd=WORKLOADS_DIR,
        stop_signal=config.stop_signal,
        cpus=cpus,
    ) as server:
        try:
            server.wait_ready(lambda: responds(port), timeout=READY_TIMEOUT_S)
        except ServerStartFailed as exc:
            raise ServerStartFailed(
                f"{exc}: {exc.log_tail.strip().splitlines()[-1:] or ''}", log_tail=exc.log_tail
            ) from None
        yield server, port
