"""Ctrl-C and a server killed mid-run leave no process and no partial result behind;
an interrupted run resumes from the cells it finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.functional, pytest.mark.smoke]


def start_lab(results: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "lab", "-q", "compare", "--plan", "smoke", "--results-dir", str(results), *args]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_server(
    lab: subprocess.Popen[str], timeout: float = 120, names: tuple[str, ...] = ("gunicorn", "uvicorn")
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


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_ctrl_c_stops_every_child_and_leaves_no_results(envs: object, tmp_path: Path) -> None:
    lab = start_lab(tmp_path, "--mix", "billing")
    wait_for_server(lab)
    descendants = psutil.Process(lab.pid).children(recursive=True)
    assert descendants
    lab.send_signal(signal.SIGINT)
    _out, err = lab.communicate(timeout=120)
    assert lab.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted"
    time.sleep(0.5)
    assert alive(descendants) == []
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
    time.sleep(0.5)
    assert alive(descendants) == []
    assert not list(tmp_path.glob(".*partial"))


def test_an_interrupted_run_resumes_from_its_finished_cells(envs: object, tmp_path: Path) -> None:
    args = ("--mix", "billing", "--variant", "sync", "--variant", "async", "--run-id", "resumed")
    lab = start_lab(tmp_path, *args)
    wait_for_server(lab, names=("uvicorn",))  # the 3.13 gunicorn batch (the sync cell) is done by now
    descendants = psutil.Process(lab.pid).children(recursive=True)
    lab.send_signal(signal.SIGINT)
    _out, err = lab.communicate(timeout=120)
    assert lab.returncode == 130, err
    assert "rerun the same command to resume" in err
    assert not (tmp_path / "resumed").exists(), "no results directory until the run is whole"
    journal = tmp_path / ".resumed.partial" / "journal.jsonl"
    kept = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    assert [(e["record"]["bench_name"], e["record"]["interpreter"]) for e in kept] == [
        ("http/billing/sync/c4/gunicorn-gthread:1x4", "cpython-3.13")
    ]
    time.sleep(0.5)
    assert alive(descendants) == []

    lab = start_lab(tmp_path, *args)
    _out, err = lab.communicate(timeout=300)
    assert lab.returncode == 0, err
    cells = json.loads((tmp_path / "resumed" / "cells.json").read_text())["cells"]
    assert len(cells) == 4
    again = [
        c for c in cells if (c["bench_name"], c["interpreter"]) == (kept[0]["record"]["bench_name"], "cpython-3.13")
    ]
    assert [c["wall_s"] for c in again] == [kept[0]["record"]["wall_s"]], "kept, not measured again"
    assert not list(tmp_path.glob(".*partial"))
    assert not (tmp_path / "resumed" / "journal.jsonl").exists()
