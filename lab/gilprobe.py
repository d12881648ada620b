"""GIL recorder installed into every workload environment (stdlib only).

The lab copies this file into each workload venv's site-packages with a ``.pth`` line
that imports it, so it runs first in every process of that venv: servers, their
workers, pyperf workers. It does nothing unless ``LAB_GIL_REPORT_DIR`` is set. When set,
it notes ``sys._is_gil_enabled()`` at start, catches the RuntimeWarning a free-threaded
interpreter emits when an extension module re-enables the GIL (naming the module), and
at exit writes ``<pid>.json`` with the GIL state at the end of the process. atexit
handlers are inherited across fork, so a gunicorn worker reports under its own pid.
"""

from __future__ import annotations

import os
import sys

REPORT_DIR_ENV = "LAB_GIL_REPORT_DIR"
GIL_WARNING_MARK = "global interpreter lock (gil) has been enabled"


def _gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return bool(check()) if check else True


def _install(report_dir: str) -> None:
    import atexit
    import json
    import sysconfig
    import warnings

    started_enabled = _gil_enabled()
    reenabled_by: list[str] = []
    previous_show = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        text = str(message)
        if GIL_WARNING_MARK in text.lower():
            reenabled_by.append(text)
        return previous_show(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    # Always show (and so record) the warning, even where filters would hide repeats.
    warnings.filterwarnings("always", message=r".*global interpreter lock", category=RuntimeWarning)

    def report() -> None:
        data = {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "argv": sys.argv[:6],
            "py_gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
            "gil_enabled_at_start": started_enabled,
            "gil_enabled_at_end": _gil_enabled(),
            "python_gil_env": os.environ.get("PYTHON_GIL"),
            "x_gil_option": str(sys._xoptions.get("gil", "")),
            "reenabled_by": reenabled_by,
        }
        path = os.path.join(report_dir, f"{os.getpid()}.json")
        tmp = f"{path}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(data, f)
            os.replace(tmp, path)
        except OSError:
            pass  # the lab treats a missing report as "GIL state unknown"

    atexit.register(report)


_dir = os.environ.get(REPORT_DIR_ENV)
if _dir:
    _install(_dir)
