"""Serve stage: start a workload server on a loopback port and stop it cleanly.

The server config is part of every result: gunicorn ``sync`` (P processes) and ``gthread``
(P x T) for WSGI, uvicorn (P processes) for ASGI, and granian (WSGI P x T, ASGI P) as an
extra; ``granian==2.7.9`` is pinned because later releases dropped 3.13t wheels. By
default both interpreters get the same pure-Python stack (asyncio loop, h11 parser):
uvloop and httptools have no cp313t wheels, and an extension without free-threading
support would re-enable the GIL. ``best-available`` uses them where they load, and says so.

Stopping: every process of the server writes a GIL report (``gilprobe``) and the lab
checks their number against the shape (``servers.expected_gil_reports``), so a server is
stopped so that its processes can end normally: the kind's stop signal to the whole
process group (``ServerConfig.stop_signal``), up to ``STOP_GRACE_S`` for the main
process, then up to ``LINGER_S`` for the rest of the group to end on its own (uvicorn's
multiprocessing resource tracker exits once the last worker is gone) before whatever is
left is killed.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import ipaddress
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from lab.envs import WORKLOADS_DIR, WorkloadEnv
from lab.errors import ServerStartFailed, SpecError
from lab.proc import ManagedProcess, child_env, managed
from lab.servers import HOST, ServerConfig, command

READY_TIMEOUT_S = 60.0
# How long the server's main process gets to stop after its stop signal (as ``proc``).
STOP_GRACE_S = 10.0
# How long the rest of the process group then gets to end on its own before SIGKILL.
LINGER_S = 3.0


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


def wait_serving(server: ManagedProcess, port: int) -> None:
    """Until the server answers its health check; ServerStartFailed with its last log line."""
    try:
        server.wait_ready(lambda: responds(port), timeout=READY_TIMEOUT_S)
    except ServerStartFailed as exc:
        raise ServerStartFailed(
            f"{exc}: {exc.log_tail.strip().splitlines()[-1:] or ''}", log_tail=exc.log_tail
        ) from None


@contextlib.contextmanager
def running_server(
    config: ServerConfig,
    env: WorkloadEnv,
    *,
    port: int | None,
    extra_env: dict[str, str],
    log_path: Path,
    cpus: frozenset[int] | None = None,
    wait: bool = True,
) -> Iterator[tuple[ManagedProcess, int]]:
    """Start the server, wait until it answers, yield it; always stop and reap it.

    With ``wait=False`` the caller waits (``wait_serving``): several servers then boot at
    once instead of one after the other."""
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
        if wait:
            wait_serving(server, port)
        try:
            yield server, port
        finally:
            stop_server(server)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``, from ``/proc``.

    Not ``os.killpg(pgid, 0)``: an orphan that exited stays a zombie member of the group
    until PID 1 reaps it, and in some containers PID 1 never does.
    """
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it just ended
        # Fields after the parenthesised command: state, ppid, pgrp, ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def stop_server(server: ManagedProcess, *, grace: float = STOP_GRACE_S, linger: float = LINGER_S) -> int | None:
    """Stop the server's process group with its stop signal and let it drain; return the exit code.

    ``managed`` would send the same signal and then SIGKILL the group as soon as the main
    process is gone, which kills helpers that are about to exit normally (and write a
    final GIL report). Here the group first gets ``linger`` seconds to end on its own;
    ``ManagedProcess.stop`` then sweeps whatever is left and reaps.
    """
    pgid = server.pid
    if server.alive():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, server.stop_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(timeout=grace)
    deadline = time.monotonic() + linger
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return server.stop(grace)
