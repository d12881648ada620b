from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lab import build
from lab.errors import BuildFailed, InterpreterCheckFailed, SourceError
from lab.spec import InterpreterSpec, load_interpreter


def make_tarball(directory: Path, version: str = "3.13.15") -> Path:
    path = directory / f"Python-{version}.tar.xz"
    with tarfile.open(path, "w:xz") as archive:
        data = b"#!/bin/sh\nexit 0\n"
        info = tarfile.TarInfo(f"Python-{version}/configure")
        info.size = len(data)
        info.mode = 0o755
        archive.addfile(info, io.BytesIO(data))
    return path


def spec_for(tarball: Path, free_threaded: bool = False) -> InterpreterSpec:
    base = load_interpreter("cpython-3.13t" if free_threaded else "cpython-3.13")
    return replace(base, sha256=hashlib.sha256(tarball.read_bytes()).hexdigest(), url="http://127.0.0.1:9/none")


def test_explicit_tarball_is_verified(tmp_path: Path, empty_cache: Path) -> None:
    tarball = make_tarball(tmp_path)
    assert build.resolve_source(spec_for(tarball), str(tarball)) == tarball


def test_directory_holding_the_tarball_is_accepted(tmp_path: Path, empty_cache: Path) -> None:
    tarball = make_tarball(tmp_path)
    assert build.resolve_source(spec_for(tarball), str(tmp_path)) == tarball


def test_environment_variable_points_at_source(
    tmp_path: Path, empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tarball = make_tarball(tmp_path)
    monkeypatch.setenv("LAB_CPYTHON_SOURCE", str(tmp_path))
    assert build.resolve_source(spec_for(tarball)) == tarball


def test_wrong_checksum_is_a_clear_error(tmp_path: Path, empty_cache: Path) -> None:
    tarball = make_tarball(tmp_path)
    spec = replace(spec_for(tarball), sha256="0" * 64)
    with pytest.raises(SourceError, match=r"sha256 mismatch for local tarball .*expects 0{64}"):
        build.resolve_source(spec, str(tarball))


def test_missing_tarball_is_a_clear_error(tmp_path: Path, empty_cache: Path) -> None:
    spec = load_interpreter("cpython-3.13")
    with pytest.raises(SourceError, match=r"directory '.*' has no Python-3.13.15.tar.xz"):
        build.resolve_source(spec, str(tmp_path))
    with pytest.raises(SourceError, match=r"'/nonexistent/x.tar.xz' does not exist"):
        build.resolve_source(spec, "/nonexistent/x.tar.xz")


def test_unreachable_url_suggests_a_local_tarball(tmp_path: Path, empty_cache: Path) -> None:
    spec = replace(load_interpreter("cpython-3.13"), url="http://127.0.0.1:9/Python-3.13.15.tar.xz")
    with pytest.raises(
        SourceError, match="could not download .*pass a local tarball with --source or LAB_CPYTHON_SOURCE"
    ):
        build.resolve_source(spec)
    assert not list((empty_cache / "sources").glob("*")), "no partial download may be left behind"


def test_cache_key_depends_on_flags_profile_and_checksum() -> None:
    gil, ft = load_interpreter("cpython-3.13"), load_interpreter("cpython-3.13t")
    keys = {
        build.cache_key(gil, "fast"),
        build.cache_key(ft, "fast"),
        build.cache_key(gil, "release"),
        build.cache_key(replace(gil, sha256="b" * 64), "fast"),
    }
    assert len(keys) == 4
    assert build.cache_key(gil, "fast") == build.cache_key(load_interpreter("cpython-3.13"), "fast")


def test_install_dir_is_under_the_cache(empty_cache: Path) -> None:
    spec = load_interpreter("cpython-3.13t")
    path = build.install_dir(spec, "fast")
    assert path.parent == empty_cache / "interpreters"
    assert path.name.startswith("cpython-3.13t-3.13.15-fast-")
    assert build.python_in(path, spec).name == "python3.13t"


def fake_steps(calls: list[list[str]], fail_step: str | None = None) -> Any:
    def run_logged(
        cmd: list[str], *, log_path: Path, env: dict[str, str], cwd: Path | None = None, timeout: float | None = None
    ) -> int:
        calls.append(list(cmd))
        if fail_step and cmd[0].endswith(fail_step):
            return 2
        if cmd[:2] == ["make", "install"]:
            stage = Path(cmd[2].split("=", 1)[1])
            prefix = Path(next(c for c in calls if c[0] == "./configure")[1].split("=", 1)[1])
            (stage / prefix.relative_to(prefix.anchor) / "bin").mkdir(parents=True)
        return 0

    return run_logged


def test_build_configures_with_spec_flags_and_renames_into_place(
    tmp_path: Path, empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tarball = make_tarball(tmp_path)
    spec = spec_for(tarball, free_threaded=True)
    calls: list[list[str]] = []
    monkeypatch.setattr(build, "run_logged", fake_steps(calls))
    verified: list[Path] = []

    def fake_verify(python: Path, **kw: Any) -> str:
        verified.append(python)
        return "checked"

    monkeypatch.setattr(build, "verify", fake_verify)

    assert build.ensure_built(spec, "release", source=str(tarball), jobs=3) == "checked"  # type: ignore[comparison-overlap]
    prefix = build.install_dir(spec, "release")
    assert calls[0] == ["./configure", f"--prefix={prefix}", "--disable-gil", "--enable-optimizations", "--with-lto"]
    assert calls[1] == ["make", "-j3"]
    assert (prefix / "lab-build.json").is_file()
    assert verified == [prefix / "bin" / "python3.13t"]
    assert not [p for p in prefix.parent.iterdir() if p.name.startswith(".tmp-")]

    # A second run reuses the build: no build step runs again.
    calls.clear()
    build.ensure_built(spec, "release", source=str(tarball))
    assert calls == []


def test_failed_build_leaves_no_install_dir(tmp_path: Path, empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tarball = make_tarball(tmp_path)
    spec = spec_for(tarball)
    monkeypatch.setattr(build, "run_logged", fake_steps([], fail_step="make"))
    with pytest.raises(BuildFailed, match="make of cpython-3.13 failed with exit code 2") as info:
        build.ensure_built(spec, "fast", source=str(tarball))
    assert info.value.return_code == 2
    prefix = build.install_dir(spec, "fast")
    assert not prefix.exists()
    assert not [p for p in prefix.parent.iterdir() if p.name.startswith(".tmp-")]


def test_missing_module_names_the_debian_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = {
        "version": "3.13.15",
        "py_gil_disabled": False,
        "gil_enabled": True,
        "config_args": "",
        "compiler": "GCC",
        "missing_modules": ["_sqlite3", "_ctypes"],
        "executable": "x",
    }
    monkeypatch.setattr(build, "probe", lambda python: fake)
    with pytest.raises(InterpreterCheckFailed, match="lacks _sqlite3, _ctypes: install libsqlite3-dev libffi-dev"):
        build.verify(tmp_path / "python", spec_name="x", role="gil", build_profile="fast", configure_flags=())


def test_gil_build_used_as_free_threaded_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = {
        "version": "3.13.15",
        "py_gil_disabled": False,
        "gil_enabled": True,
        "config_args": "",
        "compiler": "GCC",
        "missing_modules": [],
        "executable": "x",
    }
    monkeypatch.setattr(build, "probe", lambda python: fake)
    with pytest.raises(InterpreterCheckFailed, match="used as the free-threaded interpreter but Py_GIL_DISABLED=0"):
        build.verify(tmp_path / "python", spec_name="x", role="ft", build_profile="external", configure_flags=())


@pytest.mark.functional
def test_probe_reports_the_running_interpreter() -> None:
    import sys

    info = build.probe(Path(sys.executable))
    assert info["version"] == ".".join(map(str, sys.version_info[:3]))
    assert isinstance(info["py_gil_disabled"], bool)
    assert os.path.samefile(info["executable"], sys.executable)


# --- extraction on Pythons without tarfile's data filter (Debian 12's 3.11.2) ---------


def tar_with(path: Path, *members: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w") as archive:
        for info in members:
            data = b"x" * info.size if info.isfile() else None
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    info.size = 3 if kind == tarfile.REGTYPE else 0
    return info


@pytest.fixture
def no_data_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend to be a Python before 3.11.4."""
    monkeypatch.delattr(tarfile, "data_filter", raising=False)


def test_fallback_extracts_a_clean_archive_with_safe_modes(tmp_path: Path, no_data_filter: None) -> None:
    tarball = tar_with(
        tmp_path / "ok.tar",
        member("Python-x", tarfile.DIRTYPE, mode=0o755),
        member("Python-x/configure", mode=0o4777),
        member("Python-x/link", tarfile.SYMTYPE, linkname="configure"),
        member("Python-x/hard", tarfile.LNKTYPE, linkname="Python-x/configure", mode=0o4777),
    )
    dest = tmp_path / "out"
    with tarfile.open(tarball) as archive:
        build.extract_safely(archive, dest)
    configure = dest / "Python-x" / "configure"
    assert configure.read_bytes() == b"xxx"
    assert configure.stat().st_mode & 0o7777 == 0o755, "setuid and group/other write dropped"
    assert (dest / "Python-x" / "link").resolve() == configure.resolve()
    assert (dest / "Python-x" / "hard").read_bytes() == b"xxx"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (member("/tmp/evil"), "has an absolute path"),
        (member("Python-x/../../evil"), "contains '..'"),
        (member("Python-x/up", tarfile.SYMTYPE, linkname="../../etc"), "symlink leaving the target directory"),
        (member("Python-x/abs", tarfile.SYMTYPE, linkname="/etc/passwd"), "symlink leaving the target directory"),
        (member("Python-x/h", tarfile.LNKTYPE, linkname="/etc/passwd"), "hard link leaving the target directory"),
        (member("Python-x/tty", tarfile.CHRTYPE), "is a device file or FIFO"),
        (member("Python-x/fifo", tarfile.FIFOTYPE), "is a device file or FIFO"),
    ],
)
def test_fallback_refuses_members_that_escape_or_are_devices(
    tmp_path: Path, no_data_filter: None, bad: tarfile.TarInfo, why: str
) -> None:
    tarball = tar_with(tmp_path / "bad.tar", member("Python-x/configure"), bad)
    dest = tmp_path / "out"
    with tarfile.open(tarball) as archive, pytest.raises(SourceError, match=f"member '{bad.name}' .*{why}"):
        build.extract_safely(archive, dest)
    assert not dest.exists(), "nothing is extracted before every member is checked"
    assert not (tmp_path / "evil").exists()


def test_extraction_uses_the_data_filter_where_python_has_it(tmp_path: Path) -> None:
    if not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile data filter (before 3.11.4)")
    tarball = tar_with(tmp_path / "bad.tar", member("Python-x/abs", tarfile.SYMTYPE, linkname="/etc/passwd"))
    with tarfile.open(tarball) as archive, pytest.raises(tarfile.AbsoluteLinkError):
        build.extract_safely(archive, tmp_path / "out")
