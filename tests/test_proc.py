from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from lab.errors import ServerStartFailed
from lab.proc import child_env, managed

pytestmark = pytest.mark.functional

# A parent that starts a grandchild and then sleeps: both must be gone afterwards.
TREE = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); print('up', flush=True); time.sleep(60)"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def group_members(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def test_exception_kills_the_whole_group(tmp_path: Path) -> None:
    pgid = None
    with pytest.raises(RuntimeError):
        with managed([sys.executable, "-c", TREE], name="tree", log_path=tmp_path / "log", env=child_env()) as p:
            p.wait_ready(lambda: "up" in (tmp_path / "log").read_text(), timeout=10)
            time.sleep(0.3)
            pgid = p.pid
            assert len(group_members(pgid)) == 2
            raise RuntimeError("cell failed")
    assert pgid is not None
    assert group_members(pgid) == []


def test_early_exit_fails_readiness_with_log_tail(tmp_path: Path) -> None:
    code = "import sys; print('cannot bind 127.0.0.1:1'); sys.exit(3)"
    with pytest.raises(ServerStartFailed, match="exited with code 3 before it was ready") as info:
        with managed([sys.executable, "-c", code], name="srv", log_path=tmp_path / "log", env=child_env()) as p:
            p.wait_ready(lambda: False, timeout=10)
    assert "cannot bind" in info.value.log_tail


def test_readiness_timeout(tmp_path: Path) -> None:
    with pytest.raises(ServerStartFailed, match="was not ready after 0.3 s"):
        with managed(
            [sys.executable, "-c", "import time; time.sleep(30)"],
            name="slow",
            log_path=tmp_path / "log",
            env=child_env(),
        ) as p:
            p.wait_ready(lambda: False, timeout=0.3)
    assert not alive(p.pid)


def test_child_env_is_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "x")
    monkeypatch.setenv("PYTHON_GIL", "1")
    env = child_env({"DJANGO_SETTINGS_MODULE": "labsite.settings"})
    assert "SECRET_TOKEN" not in env
    assert env["PYTHON_GIL"] == "1"
    assert env["DJANGO_SETTINGS_MODULE"] == "labsite.settings"
