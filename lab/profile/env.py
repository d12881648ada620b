"""The project's environments: its requirements installed once per interpreter, and checked.

Like the lab's workload environments (``lab.envs``): one virtualenv per interpreter, the
same requirements file in each plus the servers the lab runs (gunicorn, uvicorn, h11 at
the versions of the lab's own lock), the GIL recorder (``lab.gilprobe``) in site-packages,
cached by interpreter and file contents, renamed into place only when complete.

Before anything is measured it reports, per interpreter, naming each package:
- requirements with no wheel for that interpreter: pip first installs wheels only; what it
  cannot find is named and then built from source (a package that does not build either
  stops the profile with one line naming it);
- modules whose import re-enables the GIL on the free-threaded build: every installed
  distribution's top-level modules (and top-level extension modules, ``_cffi_backend``
  and the like) are imported once in one process. CPython warns only for the *first*
  extension that re-enables the GIL in a process, so the check runs with
  ``PYTHONVERBOSE=1``, under which it also writes ``# loading module 'X', which requires
  the GIL`` for every later one; each is named with the distribution that owns it. That
  makes every 3.13t cell invalid; the servers' own GIL reports still catch what a deeper
  import re-enables at run time.

Local paths in the requirements file (``./vendor/pkg``, ``-e ../lib``) are resolved from
the requirements file's directory, as when a team runs ``pip install -r`` there, and their
contents are part of the cache key, so an edited local package is reinstalled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.build import Interpreter, cache_root
from lab.envs import GILPROBE_SOURCE, WORKLOADS_DIR, WorkloadEnv, _package_versions, cached_env, install_gilprobe
from lab.errors import BuildFailed
from lab.proc import capture, child_env, run_logged, tail

log = logging.getLogger("lab.profile")
# The servers the profile runs, pinned as in the lab's own workloads.
SERVER_PACKAGES = ("gunicorn", "uvicorn", "h11")
_PIP = ("-m", "pip", "install", "--quiet", "--disable-pip-version-check")
# pip's words for "no distribution for this interpreter" (with --only-binary=:all:).
_NO_MATCH = re.compile(
    r"(?:No matching distribution found for|Could not find a version that satisfies the requirement) "
    r"([A-Za-z0-9][A-Za-z0-9._-]*)"
)
IMPORT_CHECK = r"""
import importlib, importlib.machinery as mach, importlib.metadata as md, io, json, re, sys, warnings
# With -v / PYTHONVERBOSE, CPython names every module that needs the GIL as it loads it;
# the RuntimeWarning comes only for the first one of the process.
NEEDS_GIL = re.compile(r"^# loading module '([^']+)', which requires the GIL", re.M)
WARNED = re.compile(r"enabled to load module '([^']+)'")
EXT = tuple(mach.EXTENSION_SUFFIXES)
out = {"reenabled": [], "errors": {}}
owners = md.packages_distributions()
modules = {}
for dist in md.distributions():
    name = dist.metadata["Name"] or "?"
    if name.lower() in ("pip", "setuptools", "wheel"):
        continue
    files = list(dist.files or ())
    top = (dist.read_text("top_level.txt") or "").split()
    if not top:
        top = sorted({f.parts[0].removesuffix(".py") for f in files if f.parts and
                      (f.suffix == ".py" or f.name == "__init__.py") and not f.parts[0].endswith(".dist-info")})
    top = [m for m in top if not m.startswith("_")]
    # A private top-level extension (e.g. _cffi_backend) is imported too: it is what may need the GIL.
    top += [f.name.split(".")[0] for f in files if len(f.parts) == 1 and f.name.endswith(EXT)]
    for module in top:
        if module.isidentifier():
            modules.setdefault(module, name)
for module, name in sorted(modules.items()):
    # CPython writes the verbose line to sys.stderr: catch it per import, to know which one.
    buffer = io.StringIO()
    real_stderr, sys.stderr = sys.stderr, buffer
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            importlib.import_module(module)
        except BaseException as exc:
            out["errors"][module] = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            sys.stderr = real_stderr
    loaded = NEEDS_GIL.findall(buffer.getvalue())
    loaded += [m.group(1) for w in caught if (m := WARNED.search(str(w.message)))]
    for ext in dict.fromkeys(loaded):
        owner = (owners.get(ext.split(".")[0]) or [name])[0]
        out["reenabled"].append(f"{owner} (module {ext})")
out["gil_enabled"] = getattr(sys, "_is_gil_enabled", lambda: True)()
print(json.dumps(out))
"""


@dataclass(frozen=True, kw_only=True)
class PackageCheck:
    """What installing and importing the project's requirements showed on one interpreter."""

    interpreter: str
    free_threaded: bool
    # Requirements pip found no wheel for, built from source instead.
    no_wheel: tuple[str, ...] = ()
    # "distribution (module name)" for every extension module whose import needs the GIL.
    reenables_gil: tuple[str, ...] = ()

    @property
    def invalid_reason(self) -> str:
        """Why this interpreter's cells are invalid ('' when they are not)."""
        if self.free_threaded and self.reenables_gil:
            return "the GIL is re-enabled on import by " + ", ".join(self.reenables_gil)
        return ""


def server_requirements() -> list[str]:
    """gunicorn, uvicorn and h11 pinned as in ``workloads/requirements.lock``."""
    pins = {}
    for line in (WORKLOADS_DIR / "requirements.lock").read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep and name.lower() in SERVER_PACKAGES:
            pins[name.lower()] = f"{name}=={version.split(';')[0].strip()}"
    return [pins.get(name, name) for name in SERVER_PACKAGES]


def missing_wheels(pip_output: str) -> tuple[str, ...]:
    """Requirement names pip could not find a distribution for, in the order it named them."""
    return tuple(dict.fromkeys(m.group(1) for m in _NO_MATCH.finditer(pip_output)))


def import_check_command(python: str) -> list[str]:
    """``-v``: CPython then names every module that needs the GIL, not only the first;
    ``-P``: the lab's working directory is not on ``sys.path`` (a distribution's top-level
    name such as ``tests`` must not import the lab's own)."""
    return [python, "-P", "-v", "-c", IMPORT_CHECK]


def import_check_env(env: dict[str, str]) -> dict[str, str]:
    """The check's environment: without ``PYTHON_GIL``, under which CPython neither warns
    nor names the modules (the check asks what the default would do)."""
    return {k: v for k, v in env.items() if k != "PYTHON_GIL"}


def check_error(stderr: str) -> str:
    """The import check's stderr without ``-v``'s import trace: the error, in one line."""
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith(("#", "import "))]
    return " ".join(lines[-3:])[-300:] or "no output"


def reenabling_imports(check_output: str) -> tuple[str, ...]:
    """The import check's JSON (last line of its stdout) -> what re-enabled the GIL."""
    lines = [line for line in check_output.splitlines() if line.strip()]
    data = json.loads(lines[-1]) if lines else {}
    return tuple(sorted(set(data.get("reenabled", []))))


def local_requirements(requirements: Path) -> list[tuple[Path, bool]]:
    """The local paths a requirements file installs from, resolved from its directory (as
    pip resolves them when run there), each with whether it is editable (``-e``). Nested
    ``-r``/``-c`` files are followed (pip resolves those from the including file)."""
    found: list[tuple[Path, bool]] = []
    seen: set[Path] = set()

    def read(path: Path) -> None:
        if path in seen or not path.is_file():
            return
        seen.add(path)
        for raw in path.read_text(errors="replace").splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            option, _, rest = line.partition(" ")
            if option in ("-r", "--requirement", "-c", "--constraint"):
                read((path.parent / rest.strip()).resolve())
                continue
            editable = option in ("-e", "--editable")
            target = (rest.strip() if editable else line).split(";", 1)[0].split("[", 1)[0].strip()
            target = target.removeprefix("file://") if target.startswith("file:///") else target
            if target.startswith(("./", "../", "/")) or target in (".", ".."):
                found.append(((requirements.parent / target).resolve(), editable))

    read(requirements.resolve())
    return found


# What a build of a local package leaves in its own tree: not part of its contents.
_BUILD_LEFTOVERS = ("build", "dist", "__pycache__", ".git", ".nox", ".tox", ".venv")


# An editable install runs from its tree: only its build files decide what is installed.
_BUILD_FILES = ("pyproject.toml", "setup.py", "setup.cfg")


def _hash_local(digest: Any, path: Path, editable: bool) -> None:
    """A local requirement into the key: a copied one by contents (so a moved copy of the
    same package reuses the environment), an editable one by location and build files."""
    digest.update(f"{path if editable else path.name}\0".encode())
    if editable:
        files = [path / name for name in _BUILD_FILES if (path / name).is_file()]
    else:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        relative = file.relative_to(path) if file != path else Path(file.name)
        if any(part in _BUILD_LEFTOVERS or part.endswith(".egg-info") for part in relative.parts):
            continue
        digest.update(f"{relative}\0".encode())
        digest.update(file.read_bytes())


def env_key(interpreter: Interpreter, requirements: Path) -> str:
    digest = hashlib.sha256()
    for part in (
        str(interpreter.python.resolve()),
        interpreter.cache_key or interpreter.version,
        *server_requirements(),
    ):
        digest.update(part.encode())
    digest.update(requirements.read_bytes())
    for path, editable in local_requirements(requirements):
        _hash_local(digest, path, editable)
    digest.update(GILPROBE_SOURCE.read_bytes())
    digest.update(IMPORT_CHECK.encode())
    return digest.hexdigest()[:16]


def ensure_project_env(interpreter: Interpreter, requirements: Path) -> tuple[WorkloadEnv, PackageCheck]:
    """The project's environment on ``interpreter`` (created or reused) and its package check."""
    root = cache_root() / "profile-envs" / f"{interpreter.spec_name}-{env_key(interpreter, requirements)}"
    info = cached_env(root, lambda marker: _create(interpreter, root, marker, requirements), "project environment")
    env = WorkloadEnv(
        interpreter=interpreter, root=root, packages=info["packages"], best_stack={"loop": "asyncio", "http": "h11"}
    )
    check = PackageCheck(
        interpreter=interpreter.spec_name,
        free_threaded=interpreter.py_gil_disabled,
        no_wheel=tuple(info["no_wheel"]),
        reenables_gil=tuple(info["reenables_gil"]),
    )
    return env, check


def _create(interpreter: Interpreter, root: Path, marker: Path, requirements: Path) -> None:
    """Create the venv in place; the marker, written last, is what makes it count as done."""
    log_path = root.with_name(root.name + ".log")
    log_path.unlink(missing_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    name = interpreter.spec_name
    log.info("installing %s into a new environment for %s in %s", requirements, name, root)
    env = child_env()
    python = str(root / "bin" / "python")
    if run_logged([str(interpreter.python), "-m", "venv", str(root)], log_path=log_path, env=env) != 0:
        raise BuildFailed(f"creating a virtualenv for {name} failed; see {log_path}", return_code=1)
    install = [python, *_PIP, "-r", str(requirements), *server_requirements()]
    before = len(log_path.read_text(errors="replace"))
    no_wheel: tuple[str, ...] = ()
    # From the requirements file's directory: pip resolves a local path ('./vendor/pkg')
    # from where it runs, and a team runs it beside the file.
    here = requirements.resolve().parent
    if run_logged([*install, "--only-binary=:all:"], log_path=log_path, env=env, cwd=here) != 0:
        no_wheel = missing_wheels(log_path.read_text(errors="replace")[before:])
        log.warning("%s: no wheel for %s; trying to build from source", name, ", ".join(no_wheel) or "some requirement")
        code = run_logged(install, log_path=log_path, env=env, cwd=here)
        if code != 0:
            what = ", ".join(no_wheel) or "a requirement"
            raise BuildFailed(
                f"{what} cannot be installed on {name} (no wheel, and building from source failed); see {log_path}",
                return_code=code,
                log_tail=tail(log_path),
            )
    install_gilprobe(Path(python))
    reenables: tuple[str, ...] = ()
    if interpreter.py_gil_disabled:
        done = capture(import_check_command(python), env=import_check_env(env), timeout=300)
        if done.returncode != 0:
            raise BuildFailed(
                f"checking the imports of the project's packages on {name} failed: {check_error(done.stderr)}",
                return_code=done.returncode,
            )
        reenables = reenabling_imports(done.stdout)
    info = {"packages": _package_versions(Path(python)), "no_wheel": list(no_wheel), "reenables_gil": list(reenables)}
    marker.write_text(json.dumps(info, indent=2))
