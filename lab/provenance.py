"""What every result records about where it was measured: machine, lab, interpreter."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from lab import __version__
from lab.envs import WorkloadEnv
from lab.spec import REPO_ROOT


def machine_metadata() -> dict[str, Any]:
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count() or 0,
        "cpu_affinity": ",".join(map(str, affinity)),
        "cpu_model": _cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") or "unknown",
        "lab_version": __version__,
        "lab_commit": _git_commit(),
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout.strip()
    return (out.stdout.strip() or "unknown") + ("-dirty" if dirty else "")


def interpreter_metadata(env: WorkloadEnv) -> dict[str, Any]:
    i = env.interpreter
    meta: dict[str, Any] = {
        "lab_interpreter": i.spec_name,
        "lab_role": i.role,
        "lab_build_profile": i.build_profile,
        "lab_configure_flags": " ".join(i.configure_flags) or "(none)",
        "lab_py_gil_disabled": int(i.py_gil_disabled),
        "lab_interpreter_version": i.version,
        "lab_compiler": i.compiler,
    }
    meta.update({f"pkg_{name}": version for name, version in env.packages.items()})
    if "PYTHON_GIL" in os.environ:
        meta["lab_python_gil_env"] = os.environ["PYTHON_GIL"]
    return meta
