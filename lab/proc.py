"""Every child process the lab starts goes through here.

One place logs the shell-quoted command, builds an explicit environment, owns the
process group, waits for readiness with a timeout, keeps the log tail and kills and
reaps on any exception (the idea of pyperf's ``popen_killer``), so a failed cell or a
Ctrl-C never leaves a server or load generator behind.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("lab.proc")

# Variables a child may see from our own environment. Anything else is passed
# explicitly by the caller, so runs do not depend on the shell they started from.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHON_GIL", "XDG_CACHE_HOME")


def child_env(extra: Mapping[str, str] | None = None, *, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An explicit environment: a few inherited variables plus ``extra``."""
    source = os.environ if base is None else base
    env = {k: source[k] for k in INHERITED_ENV if k in source}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if extra:
        env.update(extra)
    return env


def pinned_to(cpus: frozenset[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child (and everything it forks) to ``cpus``."""
    if not cpus:
        return None
    chosen = set(cpus)
    return lambda: os.sched_setaffinity(0, chosen)


def repin(pid: int, cpus: frozenset[int] | None) -> None:
    """Move a running process, every thread of it, onto ``cpus`` (None: every CPU we may use)."""
    chosen = set(cpus) if cpus else os.sched_getaffinity(0)
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), chosen)
        except (ProcessLookupError, PermissionError):
            continue  # a thread that just ended


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def run_logged(
    cmd: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float | None = None,
) -> int:
    """Run ``cmd`` to completion with output appended to ``log_path``; return its exit code."""
    log.debug("$ %s", shlex.join(cmd))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        out.write(f"\n$ {shlex.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(cmd), stdout=out, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd, start_new_session=True
        )
        try:
            return proc.wait(timeout=timeout)
        except BaseException:
            kill_group(proc)
            raise


def capture(cmd: Sequence[str], *, env: Mapping[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a short command and capture its output (interpreter probes and the like)."""
    log.debug("$ %s", shlex.join(cmd))
    return subprocess.run(list(cmd), capture_output=True, text=True, env=dict(env), timeout=timeout, check=False)


def kill_group(proc: subprocess.Popen[bytes], grace: float = 10.0, stop_signal: int = signal.SIGTERM) -> None:
    """Send ``stop_signal`` to the process group, wait ``grace`` seconds, then SIGKILL it; always reap."""
    if proc.poll() is None:
        _signal_group(proc.pid, stop_signal)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # Workers may outlive their master (e.g. a crashed gunicorn arbiter): sweep the group.
    _signal_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:  # pragma: no cover - only on a wedged kernel
        log.error("process %d did not exit after SIGKILL", proc.pid)
    # Orphaned group members die asynchronously; return only once the group is gone.
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.01)
    log.error("process group %d still has members after SIGKILL", proc.pid)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class ManagedProcess:
    """A running child in its own process group, with its log file."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path, name: str, stop_signal: int) -> None:
        self.stop_signal = stop_signal
        self.proc = proc
        self.log_path = log_path
        self.name = name

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        return tail(self.log_path, lines)

    def wait_ready(self, probe: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> None:
        """Poll ``probe`` until it returns True; fail early if the process exits."""
        from lab.errors import ServerStartFailed

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServerStartFailed(
                    f"{self.name} exited with code {self.proc.returncode} before it was ready (log: {self.log_path})",
                    log_tail=self.log_tail(),
                )
            if probe():
                return
            time.sleep(interval)
        raise ServerStartFailed(
            f"{self.name} was not ready after {timeout:g} s (log: {self.log_path})", log_tail=self.log_tail()
        )

    def stop(self, grace: float = 10.0) -> int | None:
        """Graceful stop (so workers run their exit hooks), then SIGKILL whatever is left, and reap."""
        kill_group(self.proc, grace, self.stop_signal)
        return self.proc.returncode


@contextmanager
def managed(
    cmd: Sequence[str],
    *,
    name: str,
    log_path: Path,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stdout: int | None = None,
    stop_signal: int = signal.SIGTERM,
    cpus: frozenset[int] | None = None,
) -> Iterator[ManagedProcess]:
    """Start ``cmd`` in a new session; stop and reap its whole group on leaving, whatever happens."""
    log.debug("starting %s: %s", name, shlex.join(cmd))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        out.write(f"$ {shlex.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(cmd),
            stdout=out if stdout is None else stdout,
            stderr=out,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=pinned_to(cpus),
        )
    managed_proc = ManagedProcess(proc, log_path, name, stop_signal)
    try:
        yield managed_proc
    finally:
        managed_proc.stop()
