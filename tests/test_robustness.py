"""Signals and crashes mid-run: SIGINT (even inherited as ignored), SIGTERM and SIGHUP stop
the lab like Ctrl-C (every child stopped and reaped, finished cells kept, resumable, a
distinct exit code); SIGKILL leaves no process of the run behind; a server killed mid-run
fails its cells and the run goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.functional, pytest.mark.smoke]

SERVER_NAMES = ("gunicorn", "uvicorn")


def sigint(disposition: signal.Handlers) -> Callable[[], None]:
    """A preexec_fn giving the lab this SIGINT disposition, whatever the test runner has
    (a script's background job inherits SIGINT ignored), and SIGHUP's default (under
    nohup the lab would rightly keep ignoring it)."""

    def preexec() -> None:
        signal.signal(signal.SIGINT, disposition)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    return preexec


STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def no_lab_left() -> Iterator[None]:
    """A failed assertion must not leave a lab running into the next test."""
    yield
    while STARTED:
        lab = STARTED.pop()
        if lab.poll() is None:
            lab.kill()
        lab.communicate()


def start_lab(results: Path, *args: str, sigint_disposition: signal.Handlers = signal.SIG_DFL) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "lab", "compare", "-q", "--plan", "smoke", "--results-dir", str(results), *args]
    lab = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint(sigint_disposition),
    )
    STARTED.append(lab)
    return lab


def wait_for_server(
    lab: subprocess.Popen[str], timeout: float = 120, names: tuple[str, ...] = SERVER_NAMES
) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(lab.pid).children(recursive=True):
            try:
                if any(name in " ".join(child.cmdline()) for name in names):
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.1)
    raise AssertionError("no server started")


def journaled(stage: Path) -> list[dict[str, object]]:
    path = stage / "journal.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines()[1:]:
        try:
            records.append(json.loads(line)["record"])
        except ValueError:
            break  # a line being written
    return records


def wait_for_cells(lab: subprocess.Popen[str], stage: Path, count: int, timeout: float = 300) -> None:
    """Until ``count`` cells are journaled (HTTP cells are kept a mix point at a time)."""
    deadline = time.monotonic() + timeout
    while len(journaled(stage)) < count:
        assert lab.poll() is None, f"the run ended early: {lab.communicate()[1][-500:]}"
        assert time.monotonic() < deadline, f"fewer than {count} cells finished in {timeout} s"
        time.sleep(0.05)


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def none_left(procs: list[psutil.Process], timeout: float = 10) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(procs)


def stop(lab: subprocess.Popen[str], sig: int, code: int) -> str:
    lab.send_signal(sig)
    _out, err = lab.communicate(timeout=120)
    assert lab.returncode == code, err
    return err


def test_ctrl_c_stops_every_child_and_leaves_no_results(envs: object, tmp_path: Path) -> None:
    # Started the way a script's background job is: SIGINT inherited as ignored.
    lab = start_lab(tmp_path, "--mix", "billing", sigint_disposition=signal.SIG_IGN)
    wait_for_server(lab)
    descendants = psutil.Process(lab.pid).children(recursive=True)
    assert descendants
    err = stop(lab, signal.SIGINT, 130)
    assert err.strip().splitlines()[-1] == "error: interrupted"
    assert none_left(descendants) == []
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_a_server_killed_mid_run_fails_its_cells_and_the_run_goes_on(envs: object, tmp_path: Path) -> None:
    lab = start_lab(tmp_path, "--mix", "billing", "--run-id", "killed")
    server = wait_for_server(lab)
    time.sleep(0.3)
    os.kill(server.pid, signal.SIGKILL)
    descendants = psutil.Process(lab.pid).children(recursive=True)
    _out, err = lab.communicate(timeout=300)
    assert lab.returncode == 6, err
    assert "cells not ok" in err.strip().splitlines()[-1]
    cells = json.loads((tmp_path / "killed" / "cells.json").read_text())["cells"]
    failed = [c for c in cells if c["status"] == "failed"]
    assert failed and all("server" in c["reason"] or "requests failed" in c["reason"] for c in failed)
    assert any(c["status"] == "ok" for c in cells), "later batches still ran"
    assert none_left(descendants) == []
    assert not list(tmp_path.glob(".*partial"))


def test_sigterm_and_sighup_stop_cleanly_and_the_run_resumes(envs: object, tmp_path: Path) -> None:
    # 2 handler cells and 2 mix points x 2 variants over HTTP, on 2 interpreters: 12 cells,
    # journaled one by one (handler) and four at a time (each mix point's HTTP cells).
    mixes = ("--mix", "template-page", "--mix", "billing")
    args = (*mixes, "--variant", "sync", "--variant", "async", "--run-id", "resumed")
    stage = tmp_path / ".resumed.partial"
    kept: dict[tuple[object, object], object] = {}
    # A CI timeout or `kill` (SIGTERM), then a closing terminal (SIGHUP), each after one more
    # cell is journaled: the second stop comes at the latest during the last mix point.
    for sig, code, name in ((signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")):
        lab = start_lab(tmp_path, *args)
        wait_for_cells(lab, stage, len(kept) + 1)
        descendants = psutil.Process(lab.pid).children(recursive=True)
        err = stop(lab, sig, code)
        assert err.strip().splitlines()[-1] == f"error: interrupted by {name}"
        assert "rerun the same command to resume" in err
        assert not (tmp_path / "resumed").exists(), "no results directory until the run is whole"
        now = {(r["bench_name"], r["interpreter"]): r["wall_s"] for r in journaled(stage)}
        assert len(now) > len(kept) and kept.items() <= now.items(), "finished cells are kept as they were"
        kept = now
        assert none_left(descendants) == []

    lab = start_lab(tmp_path, *args)
    _out, err = lab.communicate(timeout=300)
    assert lab.returncode == 0, err
    cells = json.loads((tmp_path / "resumed" / "cells.json").read_text())["cells"]
    assert len(cells) == 12 and all(c["status"] == "ok" for c in cells), cells
    for cell in cells:
        if (cell["bench_name"], cell["interpreter"]) in kept:
            assert cell["wall_s"] == kept[(cell["bench_name"], cell["interpreter"])], "kept, not measured again"
    assert not list(tmp_path.glob(".*partial"))
    assert not (tmp_path / "resumed" / "journal.jsonl").exists()


def test_sigkill_leaves_no_process_of_the_run(envs: object, tmp_path: Path) -> None:
    started = time.time()
    lab = start_lab(tmp_path, "--mix", "billing", "--run-id", "killed")
    wait_for_server(lab)
    time.sleep(0.5)  # the load generator is running against the server by now
    descendants = psutil.Process(lab.pid).children(recursive=True)
    cmdlines = " ".join(" ".join(p.cmdline()) for p in alive(descendants))
    assert "lab.upstream" in cmdlines and any(n in cmdlines for n in SERVER_NAMES), cmdlines
    lab.kill()
    lab.communicate(timeout=30)
    assert none_left(descendants) == [], "servers, workers, upstream, load generator and guardian all die"
    # Also whatever the run started in the instant before the kill: orphans (now children of
    # init) started since, in this repository, whose command line names the run or a lab
    # helper. Other lab processes on the same machine have a living parent or another cwd.
    markers = (str(tmp_path), "lab.upstream", "lab.load", *SERVER_NAMES)
    strays = []
    for p in psutil.process_iter(["ppid", "cmdline", "create_time", "cwd"]):
        text = " ".join(p.info["cmdline"] or [])
        ours = p.info["create_time"] >= started - 1 and str(p.info["cwd"] or "").startswith(str(REPO))
        if ours and p.info["ppid"] == 1 and any(m in text for m in markers):
            strays.append(text)
    assert strays == [], "nothing started for this run outlives it"
