from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from lab.errors import ServerStartFailed
from lab.proc import child_env, managed, run_logged
from tests.conftest import REPO

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


# --- nothing outlives the lab: parent-death signal and the guardian ----------------------

# A stand-in for the lab: starts TREE through managed() (optionally under guardian()),
# prints the group's id, then waits to be killed.
LAB = """
import sys, time
from pathlib import Path
from lab.proc import child_env, guardian, managed
import contextlib
outer = guardian() if sys.argv[2] == "guarded" else contextlib.nullcontext()
with outer, managed([sys.executable, "-c", sys.argv[3]], name="tree", log_path=Path(sys.argv[1]), env=child_env()) as p:
    print(p.pid, flush=True)
    time.sleep(60)
"""
SINGLE = "import time; print('up', flush=True); time.sleep(60)"


def start_lab_stand_in(tmp_path: Path, mode: str, child: str) -> tuple[subprocess.Popen[str], int]:
    log = tmp_path / "log"
    lab = subprocess.Popen(
        [sys.executable, "-c", LAB, str(log), mode, child], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert lab.stdout is not None
    pgid = int(lab.stdout.readline())
    deadline = time.monotonic() + 10
    while "up" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # TREE's grandchild is started before "up"; give it time to exec
    return lab, pgid


def gone_within(pids: list[int], seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_a_child_dies_when_the_lab_is_sigkilled(tmp_path: Path) -> None:
    lab, pgid = start_lab_stand_in(tmp_path, "bare", SINGLE)
    assert group_members(pgid) == [pgid]
    lab.kill()
    lab.communicate()
    assert gone_within([pgid]), "PR_SET_PDEATHSIG kills the direct child"


def test_the_guardian_kills_grandchildren_when_the_lab_is_sigkilled(tmp_path: Path) -> None:
    lab, pgid = start_lab_stand_in(tmp_path, "guarded", TREE)
    members = group_members(pgid)
    assert len(members) == 2, "server and its worker"
    watchers = [p for p in psutil.Process(lab.pid).children() if p.pid != pgid]
    assert len(watchers) == 1 and "-I" in watchers[0].cmdline(), "one guardian, started with the first child"
    lab.kill()
    lab.communicate()
    assert gone_within(members), "the grandchild has no parent-death signal: the group kill reaches it"
    assert gone_within([watchers[0].pid]), "the guardian exits once it has swept"


def test_the_guardian_exits_with_a_clean_lab_and_starts_only_with_a_child() -> None:
    from lab import proc

    with proc.guardian():
        assert proc._Guardian.watcher is None, "no child, no watcher process"
    with proc.guardian():
        proc.capture([sys.executable, "-c", "pass"], env=child_env())  # capture() does not own a group
        assert proc._Guardian.watcher is None
        code = proc.run_logged([sys.executable, "-c", "pass"], log_path=Path(os.devnull), env=child_env())
        assert code == 0
        watcher = proc._Guardian.watcher
        assert watcher is not None and watcher.poll() is None
    assert watcher.poll() == 0, "closing the pipe ends the watcher, which is reaped"


def test_a_finished_step_leaves_nothing_running(tmp_path: Path) -> None:
    # A build step that forks a daemon-like grandchild and exits 0.
    code = (
        "import subprocess, sys; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); print(p.pid, flush=True)"
    )
    log = tmp_path / "log"
    assert run_logged([sys.executable, "-c", code], log_path=log, env=child_env()) == 0
    grandchild = int(log.read_text().splitlines()[-1])
    assert gone_within([grandchild], 1), "run_logged sweeps the step's group"
