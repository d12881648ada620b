"""Every child process the lab starts goes through here.

One place logs the shell-quoted command, builds an explicit environment, owns the
process group, waits for readiness with a timeout, keeps the log tail and kills and
reaps on any exception (the idea of pyperf's ``popen_killer``), so a failed cell or a
Ctrl-C never leaves a server or load generator behind.

Nothing may outlive the lab even when it cannot clean up (SIGKILL, an OOM kill): every
child asks the kernel for SIGKILL when the lab dies (``PR_SET_PDEATHSIG``), and while
``guardian()`` is active a tiny watcher process, in its own session, SIGKILLs every
process group the lab still owns once the lab is gone. The group kill is what reaches
grandchildren: gunicorn and uvicorn workers, pyperf workers, ``make``'s compilers and a
PostgreSQL started through ``runuser`` (whose credential change clears the death signal).
"""

from __future__ import annotations

import ctypes
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


# prctl(2) option: the signal this process gets when its parent (thread) exits.
PR_SET_PDEATHSIG = 1
# Loaded in the parent: the child between fork and exec should only call into it.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def pinned_to(cpus: frozenset[int] | None) -> Callable[[], None]:
    """A ``preexec_fn`` for any child: dies with the lab, and is pinned (with everything
    it forks) to ``cpus`` when given.

    Use it for children started with ``subprocess`` directly; ``managed``, ``run_logged``
    and ``capture`` apply it themselves.
    """
    chosen = set(cpus) if cpus else None
    # The kernel sends the death signal when the *thread* that forked the child exits,
    # not the process: a child forked from a short-lived worker thread would be killed
    # when that thread ends. The lab starts children from its main thread; from any
    # other thread, rely on the guardian instead.
    death = signal.SIGKILL if threading.current_thread() is threading.main_thread() else 0
    parent = os.getpid()

    def setup() -> None:
        if death and _LIBC is not None:
            _LIBC.prctl(PR_SET_PDEATHSIG, death, 0, 0, 0)
            if os.getppid() != parent:  # the lab died before prctl took effect
                os.kill(os.getpid(), death)
        if chosen:
            os.sched_setaffinity(0, chosen)

    return setup


# -- guardian: kills the lab's process groups once the lab is gone -------------------

_GUARDIAN = """
import os, signal, sys
groups = set()
for line in sys.stdin:  # "+PGID" / "-PGID" from the lab; end of file: the lab is gone
    (groups.add if line[0] == "+" else groups.discard)(int(line[1:]))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


class _Guardian:
    """The watcher's state: armed by ``guardian()``, started with the first child."""

    armed = False
    fd: int | None = None
    watcher: subprocess.Popen[bytes] | None = None


def _start_guardian() -> None:
    read, write = os.pipe()  # not inheritable: the lab stays the pipe's only writer
    try:
        _Guardian.watcher = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _GUARDIAN],
            stdin=read,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: Ctrl-C, a closing terminal or a kill of the lab's job
            # group must not take the watcher down with the lab.
            start_new_session=True,
        )
    finally:
        os.close(read)
    _Guardian.fd = write


@contextmanager
def guardian() -> Iterator[None]:
    """While active, every process group started here is SIGKILLed once the lab exits,
    however it exits: the watcher learns of it from the end of its stdin pipe.

    The watcher starts with the first child, so a command that fails validation
    starts no process at all.
    """
    if _Guardian.armed:  # nested: the outer one covers it
        yield
        return
    _Guardian.armed = True
    try:
        yield
    finally:
        _Guardian.armed = False
        fd, watcher = _Guardian.fd, _Guardian.watcher
        _Guardian.fd = _Guardian.watcher = None
        if fd is not None:
            os.close(fd)  # the watcher kills whatever is still registered, then exits
        if watcher is not None:
            try:
                watcher.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - the watcher never blocks
                watcher.kill()
                watcher.wait()


def _tell_guardian(message: str) -> None:
    if _Guardian.fd is None:
        return
    try:
        os.write(_Guardian.fd, f"{message}\n".encode())
    except OSError:  # the watcher is gone; the death signals still apply
        pass


def _popen(cmd: Sequence[str], *, cpus: frozenset[int] | None = None, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new session of its own, registered with the guardian."""
    if _Guardian.armed and _Guardian.fd is None:
        _start_guardian()
    proc: subprocess.Popen[bytes] = subprocess.Popen(
        list(cmd), start_new_session=True, preexec_fn=pinned_to(cpus), **kwargs
    )
    _tell_guardian(f"+{proc.pid}")
    return proc


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
        proc = _popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd)
        try:
            code = proc.wait(timeout=timeout)
        except BaseException:
            kill_group(proc)
            raise
        # A step is over when its whole group is: nothing it forked may linger.
        kill_group(proc)
        return code


def capture(cmd: Sequence[str], *, env: Mapping[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a short command and capture its output (interpreter probes and the like)."""
    log.debug("$ %s", shlex.join(cmd))
    return subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=timeout,
        check=False,
        preexec_fn=pinned_to(None),
    )


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
            _tell_guardian(f"-{proc.pid}")
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
        proc = _popen(cmd, cpus=cpus, stdout=out if stdout is None else stdout, stderr=out, env=dict(env), cwd=cwd)
    managed_proc = ManagedProcess(proc, log_path, name, stop_signal)
    try:
        yield managed_proc
    finally:
        managed_proc.stop()
