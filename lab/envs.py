"""Workload environments: one virtualenv per interpreter, same locked packages in each.

Both environments install the same lock file (``workloads/requirements.lock``, or
``requirements-django52.lock`` for the LTS line; exact pins, pure-Python or
free-threading-safe wheels only), so the measured stack is identical on 3.13 and 3.13t.
Environments are cached by interpreter, lock file and GIL-probe content; an environment
is built in a temporary directory and renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.build import Interpreter, cache_root, locked
from lab.errors import BuildFailed
from lab.proc import capture, child_env, run_logged, tail
from lab.spec import DJANGO_LOCK_FILES, REPO_ROOT, DjangoLine

log = logging.getLogger("lab.envs")

WORKLOADS_DIR = REPO_ROOT / "workloads"
GILPROBE_SOURCE = Path(__file__).with_name("gilprobe.py")
# Packages whose versions go into every result's metadata.
TRACKED_PACKAGES = (
    "django",
    "asgiref",
    "gunicorn",
    "uvicorn",
    "h11",
    "granian",
    "pyperf",
    "httpx",
    "aiohttp",
    "uvloop",
    "httptools",
)
# Optional speedups for the best-available stack: each installed only if a wheel exists.
BEST_LOCK = WORKLOADS_DIR / "requirements-best.lock"
# Run in the new environment: which of them import, and whether the GIL stayed off.
BEST_STACK_PROBE = """
import json, sys
out = {}
for name in ("uvloop", "httptools"):
    try:
        __import__(name)
        out[name] = True
    except ImportError:
        out[name] = False
gil = getattr(sys, "_is_gil_enabled", lambda: True)()
print(json.dumps({"imports": out, "gil_enabled": gil}))
"""


@dataclass(frozen=True, kw_only=True)
class WorkloadEnv:
    interpreter: Interpreter
    root: Path
    packages: dict[str, str]
    # What the best-available stack resolves to here: {"loop": ..., "http": ...}.
    best_stack: dict[str, str]

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"


def lock_file(django: DjangoLine) -> Path:
    return WORKLOADS_DIR / DJANGO_LOCK_FILES[django]


def env_key(interpreter: Interpreter, lock: Path) -> str:
    digest = hashlib.sha256()
    digest.update(str(interpreter.python.resolve()).encode())
    digest.update((interpreter.cache_key or interpreter.version).encode())
    digest.update(lock.read_bytes())
    digest.update(BEST_LOCK.read_bytes())
    digest.update(GILPROBE_SOURCE.read_bytes())
    return digest.hexdigest()[:16]


def cached_env(root: Path, create: Callable[[Path], None], what: str) -> dict[str, Any]:
    """The info of the environment at ``root``: reused when its marker (``lab-env.json``,
    written last by ``create(marker)``) exists, else created under a lock so that two runs
    never build the same one."""
    marker = root / "lab-env.json"
    if marker.is_file():
        log.info("reusing %s %s", what, root)
    else:
        with locked(root.with_name(root.name + ".lock")):
            if not marker.is_file():
                create(marker)
    info: dict[str, Any] = json.loads(marker.read_text())
    return info


def install_gilprobe(python: Path) -> None:
    """Make every process of the environment load the GIL probe at start-up (a .pth file)."""
    site = Path(
        capture([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], env=child_env()).stdout.strip()
    )
    shutil.copy(GILPROBE_SOURCE, site / "_lab_gilprobe.py")
    (site / "_lab_gilprobe.pth").write_text("import _lab_gilprobe\n")


def ensure_env(interpreter: Interpreter, django: DjangoLine = "6.1") -> WorkloadEnv:
    lock = lock_file(django)
    root = cache_root() / "envs" / f"{interpreter.spec_name}-django{django}-{env_key(interpreter, lock)}"
    info = cached_env(root, lambda marker: _create(interpreter, root, marker, lock), "workload environment")
    return WorkloadEnv(interpreter=interpreter, root=root, packages=info["packages"], best_stack=info["best_stack"])


def _create(interpreter: Interpreter, root: Path, marker: Path, lock: Path) -> None:
    """Create the venv in place; the marker, written last, is what makes it count as done."""
    log_path = root.with_name(root.name + ".log")
    log_path.unlink(missing_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    log.info("creating workload environment for %s in %s", interpreter.spec_name, root)
    env = child_env()
    python = root / "bin" / "python"
    steps = [
        [str(interpreter.python), "-m", "venv", str(root)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "-r",
            str(lock),
        ],
    ]
    for cmd in steps:
        code = run_logged(cmd, log_path=log_path, env=env)
        if code != 0:
            raise BuildFailed(
                f"creating the workload environment for {interpreter.spec_name} failed (exit {code}); see {log_path}",
                return_code=code,
                log_tail=tail(log_path),
            )
    for requirement in _requirements(BEST_LOCK):
        # Optional: a missing wheel (e.g. no cp313t build) just leaves it out, logged.
        cmd = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:"]
        if run_logged([*cmd, "--no-deps", requirement], log_path=log_path, env=env) != 0:
            log.info(
                "%s: no usable wheel of %s; the best-available stack goes without it",
                interpreter.spec_name,
                requirement,
            )
    install_gilprobe(python)
    info = {"packages": _package_versions(python), "best_stack": _best_stack(python, interpreter.py_gil_disabled)}
    marker.write_text(json.dumps(info, indent=2))


def _requirements(lock: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in lock.read_text().splitlines())
    return [line for line in lines if line]


def _best_stack(python: Path, free_threaded: bool) -> dict[str, str]:
    """uvloop/httptools where they import (and, on 3.13t, leave the GIL off); else the pure stack."""
    probe = json.loads(capture([str(python), "-c", BEST_STACK_PROBE], env=child_env()).stdout)
    usable = probe["imports"] if not (free_threaded and probe["gil_enabled"]) else {}
    return {
        "loop": "uvloop" if usable.get("uvloop") else "asyncio",
        "http": "httptools" if usable.get("httptools") else "h11",
    }


def _package_versions(python: Path) -> dict[str, str]:
    script = (
        "import json, importlib.metadata as m\n"
        f"names = {list(TRACKED_PACKAGES)!r}\n"
        "out = {}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = 'missing'\n"
        "print(json.dumps(out))\n"
    )
    result = capture([str(python), "-c", script], env=child_env())
    packages: dict[str, str] = json.loads(result.stdout)
    return packages
