"""Build stage: turn an ``InterpreterSpec`` into a verified interpreter in the cache.

Source resolution order: an explicit local tarball or directory (``--source`` or
``LAB_CPYTHON_SOURCE``), then the download cache, then the spec's URL. The sha256 is
verified whichever way the tarball arrived. Builds go into a temporary directory under
the cache and are renamed into place only when complete, under a per-key lock, so two
runs never build the same key at once and an interrupted build never looks finished.
Hands on an ``Interpreter``: the path of a verified ``python`` plus its provenance.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab import FORMAT_VERSION
from lab.errors import BuildFailed, InterpreterCheckFailed, SourceError
from lab.proc import capture, child_env, run_logged, tail
from lab.spec import BuildProfile, InterpreterSpec

log = logging.getLogger("lab.build")

SOURCE_ENV = "LAB_CPYTHON_SOURCE"
CACHE_ENV = "LAB_CACHE_DIR"
# Bump when the build recipe changes in a way that changes the result.
BUILDER_VERSION = 1

# Modules the workloads need, and the Debian/Ubuntu package whose absence at build
# time silently drops each of them from a CPython build.
REQUIRED_MODULES: dict[str, str] = {
    "_sqlite3": "libsqlite3-dev",
    "_ssl": "libssl-dev",
    "_ctypes": "libffi-dev",
    "zlib": "zlib1g-dev",
}

_PROBE = r"""
import importlib, json, platform, sys, sysconfig
missing = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        missing.append(name)
gil_check = getattr(sys, "_is_gil_enabled", None)
print(json.dumps({
    "executable": sys.executable,
    "version": platform.python_version(),
    "implementation": sys.implementation.name,
    "py_gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "gil_enabled": gil_check() if gil_check else True,
    "config_args": sysconfig.get_config_var("CONFIG_ARGS") or "",
    "compiler": platform.python_compiler(),
    "missing_modules": missing,
}))
"""


def cache_root() -> Path:
    if CACHE_ENV in os.environ:
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "django-ft-lab"


@dataclass(frozen=True, kw_only=True)
class Interpreter:
    """A usable interpreter and what we know of its origin."""

    spec_name: str
    role: str  # "gil" or "ft"
    python: Path
    build_profile: str  # "fast", "release" or "external"
    configure_flags: tuple[str, ...]
    version: str
    py_gil_disabled: bool
    config_args: str
    compiler: str
    source_sha256: str | None = None
    cache_key: str | None = None
    warnings: tuple[str, ...] = field(default=())

    def provenance(self) -> dict[str, Any]:
        data = asdict(self)
        data["python"] = str(self.python)
        data["configure_flags"] = list(self.configure_flags)
        data["warnings"] = list(self.warnings)
        return data


# --- source -----------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(path: Path, spec: InterpreterSpec, origin: str) -> Path:
    actual = sha256_of(path)
    if actual != spec.sha256:
        raise SourceError(
            f"sha256 mismatch for {origin} '{path}': got {actual}, "
            f"{spec.source_path or spec.name} expects {spec.sha256}"
        )
    return path


def resolve_source(spec: InterpreterSpec, explicit: str | None = None, *, download: bool = True) -> Path:
    """Find the verified source tarball for ``spec`` (see the module docstring for the order)."""
    explicit = explicit or os.environ.get(SOURCE_ENV) or None
    if explicit:
        given = Path(explicit).expanduser()
        candidate = given / spec.tarball_name if given.is_dir() else given
        if not candidate.is_file():
            where = f"directory '{given}' has no {spec.tarball_name}" if given.is_dir() else f"'{given}' does not exist"
            raise SourceError(f"CPython source not found: {where} (from --source or {SOURCE_ENV})")
        return _verified(candidate, spec, "local tarball")
    cached = cache_root() / "sources" / spec.tarball_name
    if cached.is_file():
        return _verified(cached, spec, "cached tarball")
    if not download:
        raise SourceError(f"no local source for {spec.name}; pass --source or set {SOURCE_ENV}")
    return _download(spec, cached)


def _download(spec: InterpreterSpec, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    log.info("downloading %s", spec.url)
    try:
        with urllib.request.urlopen(spec.url, timeout=60) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
        _verified(partial, spec, "downloaded file")
        partial.rename(dest)
    except (urllib.error.URLError, OSError) as exc:
        raise SourceError(
            f"could not download {spec.url}: {exc}; pass a local tarball with --source or {SOURCE_ENV}"
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return dest


# --- cache --------------------------------------------------------------------


def cache_key(spec: InterpreterSpec, profile: BuildProfile) -> str:
    """Key of a build: version, source checksum and the full configure flags (order kept)."""
    material = json.dumps(
        {
            "version": spec.version,
            "sha256": spec.sha256,
            "flags": list(spec.flags_for(profile)),
            "builder": BUILDER_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def install_dir(spec: InterpreterSpec, profile: BuildProfile) -> Path:
    return cache_root() / "interpreters" / f"{spec.name}-{spec.version}-{profile}-{cache_key(spec, profile)}"


def python_in(prefix: Path, spec: InterpreterSpec) -> Path:
    major_minor = ".".join(spec.version.split(".")[:2])
    return prefix / "bin" / f"python{major_minor}{'t' if spec.free_threaded else ''}"


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another run is building %s; waiting for it", lock_path.stem)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_built(
    spec: InterpreterSpec, profile: BuildProfile, *, source: str | None = None, jobs: int | None = None
) -> Interpreter:
    """Return the cached build of ``spec``, building it first if needed."""
    prefix = install_dir(spec, profile)
    marker = prefix / "lab-build.json"
    if not marker.is_file():
        with locked(prefix.with_name(prefix.name + ".lock")):
            if not marker.is_file():  # somebody may have finished it while we waited
                _build(spec, profile, prefix, resolve_source(spec, source), jobs or os.cpu_count() or 1)
    else:
        log.info("reusing cached build %s", prefix)
    return verify(
        python_in(prefix, spec),
        spec_name=spec.name,
        role="ft" if spec.free_threaded else "gil",
        build_profile=profile,
        configure_flags=spec.flags_for(profile),
        source_sha256=spec.sha256,
        cache_key=cache_key(spec, profile),
    )


def extract_safely(archive: tarfile.TarFile, dest: Path) -> None:
    """Extract ``archive`` under ``dest`` and nowhere else, on every Python the lab accepts.

    Python 3.11.4+ has tarfile's ``data`` filter. Debian 12's own python3 is 3.11.2, which
    has none, so there the members are checked here with the same rules: no absolute
    paths, no ``..``, no links that leave ``dest``, no device files or FIFOs, no
    setuid/setgid bits or foreign owners.
    """
    if hasattr(tarfile, "data_filter"):
        archive.extractall(dest, filter="data")
        return
    root = os.path.realpath(dest)
    members = [_checked_member(member, root, archive.name) for member in archive.getmembers()]
    if hasattr(tarfile, "fully_trusted_filter"):  # only when a test hides data_filter on a newer Python
        archive.extractall(dest, members=members, filter="fully_trusted")
    else:
        archive.extractall(dest, members=members)


def _checked_member(member: tarfile.TarInfo, root: str, archive: object) -> tarfile.TarInfo:
    def refuse(why: str) -> SourceError:
        return SourceError(f"refusing to extract {archive}: member {member.name!r} {why}")

    def inside(path: str) -> bool:
        return os.path.commonpath([root, os.path.realpath(path)]) == root

    name = member.name
    if name.startswith("/") or os.path.isabs(name):
        raise refuse("has an absolute path")
    if ".." in Path(name).parts:
        raise refuse("contains '..'")
    target = os.path.join(root, name)
    if not inside(target):
        raise refuse("resolves outside the target directory")
    if member.isdev():  # character/block devices and FIFOs
        raise refuse("is a device file or FIFO")
    if member.issym():
        if os.path.isabs(member.linkname) or not inside(os.path.join(os.path.dirname(target), member.linkname)):
            raise refuse(f"is a symlink leaving the target directory ({member.linkname!r})")
    elif member.islnk():
        if os.path.isabs(member.linkname) or not inside(os.path.join(root, member.linkname)):
            raise refuse(f"is a hard link leaving the target directory ({member.linkname!r})")
    elif not (member.isfile() or member.isdir()):
        raise refuse("is not a regular file, directory or link")
    # As the data filter does: no setuid/setgid/sticky bits, no group/other write, and files
    # owned by whoever extracts them (root would otherwise chown to the archive's owners).
    if not member.issym():
        member.mode &= 0o755
    member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
    return member


def _build(spec: InterpreterSpec, profile: BuildProfile, prefix: Path, tarball: Path, jobs: int) -> None:
    work = prefix.with_name(f".tmp-{prefix.name}-{os.getpid()}")
    log_path = prefix.with_name(prefix.name + ".log")
    log_path.unlink(missing_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    started = time.monotonic()
    log.info("building %s (%s profile) into %s; log: %s", spec.name, profile, prefix, log_path)
    try:
        with tarfile.open(tarball) as archive:
            extract_safely(archive, work)
        src = work / f"Python-{spec.version}"
        stage = work / "stage"
        env = child_env()
        steps: list[tuple[str, list[str]]] = [
            ("configure", ["./configure", f"--prefix={prefix}", *spec.flags_for(profile)]),
            ("make", ["make", f"-j{jobs}"]),
            ("make install", ["make", "install", f"DESTDIR={stage}"]),
        ]
        for step, cmd in steps:
            code = run_logged(cmd, log_path=log_path, env=env, cwd=src)
            if code != 0:
                raise BuildFailed(
                    f"{step} of {spec.name} failed with exit code {code}; see {log_path}",
                    return_code=code,
                    log_tail=tail(log_path),
                )
        staged = stage / prefix.relative_to(prefix.anchor)
        (staged / "lab-build.json").write_text(
            json.dumps(
                {
                    "format_version": FORMAT_VERSION,
                    "spec": spec.name,
                    "version": spec.version,
                    "profile": profile,
                    "configure_flags": list(spec.flags_for(profile)),
                    "sha256": spec.sha256,
                    "build_seconds": round(time.monotonic() - started, 1),
                },
                indent=2,
            )
        )
        staged.rename(prefix)  # atomic: the build appears complete or not at all
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("built %s in %.0f s", spec.name, time.monotonic() - started)


# --- verification ---------------------------------------------------------------


def probe(python: Path) -> dict[str, Any]:
    """Run ``python`` and report its version, GIL build/state and missing modules."""
    if not python.is_file() or not os.access(python, os.X_OK):
        raise InterpreterCheckFailed(f"interpreter '{python}' does not exist or is not executable")
    result = capture([str(python), "-c", _PROBE, *REQUIRED_MODULES], env=child_env())
    if result.returncode != 0:
        raise InterpreterCheckFailed(f"interpreter '{python}' failed to run: {result.stderr.strip()[-300:]}")
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def verify(
    python: Path,
    *,
    spec_name: str,
    role: str,
    build_profile: str,
    configure_flags: tuple[str, ...],
    source_sha256: str | None = None,
    cache_key: str | None = None,
    warnings: tuple[str, ...] = (),
) -> Interpreter:
    info = probe(python)
    if info["missing_modules"]:
        packages = " ".join(REQUIRED_MODULES[m] for m in info["missing_modules"])
        raise InterpreterCheckFailed(
            f"{python} lacks {', '.join(info['missing_modules'])}: install {packages} "
            f"(apt install {packages}) and rebuild (delete {python.parent.parent})"
        )
    want_ft = role == "ft"
    if info["py_gil_disabled"] != want_ft:
        kind = "free-threaded" if want_ft else "GIL"
        raise InterpreterCheckFailed(
            f"{python} is used as the {kind} interpreter but Py_GIL_DISABLED={int(info['py_gil_disabled'])}"
        )
    return Interpreter(
        spec_name=spec_name,
        role=role,
        python=python,
        build_profile=build_profile,
        configure_flags=configure_flags,
        version=info["version"],
        py_gil_disabled=info["py_gil_disabled"],
        config_args=info["config_args"],
        compiler=info["compiler"],
        source_sha256=source_sha256,
        cache_key=cache_key,
        warnings=warnings,
    )


def find_external(path_or_name: str) -> Path:
    """Accept a path, or a name found on PATH (``python3.13t``)."""
    if os.sep in path_or_name:
        return Path(path_or_name).expanduser()
    found = shutil.which(path_or_name)
    if not found:
        raise InterpreterCheckFailed(f"interpreter '{path_or_name}' not found on PATH")
    return Path(found)


EXTERNAL_WARNING = (
    "using interpreters not built by the lab from one source: they may differ in more than the GIL "
    "(compiler, flags, patches); their provenance is recorded"
)


def use_external(path_or_name: str, role: str) -> Interpreter:
    python = find_external(path_or_name)
    info = probe(python)
    return verify(
        python,
        spec_name=f"external-{info['version']}{'t' if role == 'ft' else ''}",
        role=role,
        build_profile="external",
        configure_flags=tuple(info["config_args"].replace("'", "").split()),
        warnings=(EXTERNAL_WARNING,),
    )
