"""GIL recorder installed into every workload environment (stdlib only).

The lab copies this file into each workload venv's site-packages with a ``.pth`` line
that imports it, so it runs first in every process of that venv: servers, their
workers, multiprocessing helpers, pyperf workers. It does nothing unless
``LAB_GIL_REPORT_DIR`` is set. When set, every process keeps ``<pid>.json`` in that
directory up to date with its GIL state:

- at start it notes ``sys._is_gil_enabled()`` and catches the RuntimeWarning a
  free-threaded interpreter emits when an extension module re-enables the GIL (naming
  the module);
- a daemon thread writes a report with ``final: false`` at once, then checks the state
  every ``WATCH_INTERVAL_S`` and rewrites the report whenever it changed. So a process
  that is killed (SIGKILL, or a server worker that re-raises SIGTERM after its own
  shutdown and dies of it, as uvicorn's workers do) still leaves a report that holds
  its GIL state up to at most ``WATCH_INTERVAL_S`` before it died: the measured window
  ends before the lab stops a server, so that state covers the window. Writing only
  on change keeps file I/O out of the measured processes;
- at a normal exit it writes the report once more with ``final: true``. Two hooks
  cover every exit path: ``atexit`` (ordinary exits, gunicorn's ``os.fork`` workers,
  multiprocessing ``spawn`` children) and ``threading``'s pre-shutdown hook, because a
  multiprocessing ``fork`` child (granian's workers on 3.13) clears ``atexit`` and
  leaves through ``os._exit`` but still runs ``threading._shutdown()``;
- in a forked child (``os.register_at_fork``) a fresh watcher reports under the
  child's pid. Its first write waits ``FORK_FIRST_WRITE_S``: ``subprocess`` with a
  ``preexec_fn`` also runs at-fork hooks and then execs another program, whose pid
  should leave no report.
"""

from __future__ import annotations

import os
import sys

REPORT_DIR_ENV = "LAB_GIL_REPORT_DIR"
GIL_WARNING_MARK = "global interpreter lock (gil) has been enabled"
REPORT_VERSION = 2
# How stale a non-final report can be: the watcher's polling period.
WATCH_INTERVAL_S = 0.5
# First write of a forked child's watcher; a fork that execs at once is gone by then.
FORK_FIRST_WRITE_S = 0.05


def _gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return bool(check()) if check else True


def _install(report_dir: str) -> None:
    import atexit
    import json
    import sysconfig
    import threading
    import time
    import warnings

    started_enabled = _gil_enabled()
    py_gil_disabled = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    reenabled_by: list[str] = []

    # Hook the function the C warnings machinery calls for every shown warning, not
    # ``showwarning``: Django's logging setup (``logging.captureWarnings``) replaces
    # ``showwarning`` without chaining, which would hide imports after that point.
    previous_show = warnings._showwarnmsg  # type: ignore[attr-defined]

    def show(msg: warnings.WarningMessage) -> None:
        text = str(msg.message)
        if GIL_WARNING_MARK in text.lower():
            reenabled_by.append(text)
        previous_show(msg)

    warnings._showwarnmsg = show  # type: ignore[attr-defined]
    # Always show (and so record) the warning, even where filters would hide repeats.
    warnings.filterwarnings("always", message=r".*global interpreter lock", category=RuntimeWarning)

    class Reporter:
        """One per process: a fresh one after fork (the parent's lock may be held)."""

        def __init__(self) -> None:
            self.pid = os.getpid()
            self.lock = threading.Lock()
            self.done = False  # the final report is written: the watcher stops writing
            self.written: tuple[bool, int, tuple[str, ...]] | None = None

        def write(self, *, final: bool) -> None:
            if os.getpid() != self.pid:
                return  # a forked child before its own reporter exists
            with self.lock:
                if self.done:
                    return
                # argv too: ``-m`` runs rewrite it after the first report.
                state = (_gil_enabled(), len(reenabled_by), tuple(sys.argv[:6]))
                if not final and state == self.written:
                    return
                data = {
                    "version": REPORT_VERSION,
                    "pid": self.pid,
                    "ppid": os.getppid(),
                    "argv": list(state[2]),
                    "py_gil_disabled": py_gil_disabled,
                    "gil_enabled_at_start": started_enabled,
                    # At the end for a final report; at the last change otherwise.
                    "gil_enabled_at_end": state[0],
                    "python_gil_env": os.environ.get("PYTHON_GIL"),
                    "x_gil_option": str(sys._xoptions.get("gil", "")),
                    "reenabled_by": list(reenabled_by),
                    "final": final,
                    "written_at": time.time(),
                    "watch_interval_s": WATCH_INTERVAL_S,
                }
                path = os.path.join(report_dir, f"{self.pid}.json")
                tmp = f"{path}.tmp"
                try:
                    with open(tmp, "w") as f:
                        json.dump(data, f)
                    os.replace(tmp, path)
                except OSError:
                    return  # the lab treats a missing report as "GIL state unknown"
                self.written = state
                self.done = final

        def watch(self, first_delay: float) -> None:
            time.sleep(first_delay)
            while not self.done:
                self.write(final=False)
                time.sleep(WATCH_INTERVAL_S)

        def start(self, first_delay: float = 0.0) -> None:
            thread = threading.Thread(target=self.watch, args=(first_delay,), name="lab-gilprobe", daemon=True)
            thread.start()

    current = Reporter()

    def final() -> None:
        current.write(final=True)

    def after_fork_in_child() -> None:
        nonlocal current
        current = Reporter()
        current.start(FORK_FIRST_WRITE_S)

    atexit.register(final)
    register_pre_shutdown = getattr(threading, "_register_atexit", None)
    if register_pre_shutdown is not None:
        register_pre_shutdown(final)
    # Registered after ``threading`` set its own hook, so threading is reset first.
    os.register_at_fork(after_in_child=after_fork_in_child)
    current.start()


_dir = os.environ.get(REPORT_DIR_ENV)
if _dir:
    _install(_dir)
