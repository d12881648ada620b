from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lab.gilprobe import WATCH_INTERVAL_S

PROBE = Path(__file__).resolve().parent.parent / "lab" / "gilprobe.py"

pytestmark = pytest.mark.functional

WARN = (
    'import warnings; warnings.warn("The global interpreter lock (GIL) has been enabled to load module '
    "'fake_ext', which has not declared that it can run safely without the GIL.\", RuntimeWarning)"
)


def script(code: str) -> str:
    # Import the probe first, as the .pth line does in a workload environment.
    return f"import runpy; runpy.run_path({str(PROBE)!r}, run_name='_lab_gilprobe')\n{code}"


def probe_env(report_dir: Path | None) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin"}
    if report_dir is not None:
        env["LAB_GIL_REPORT_DIR"] = str(report_dir)
    return env


def run_with_probe(code: str, report_dir: Path | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script(code)], env=probe_env(report_dir), capture_output=True, text=True, check=True
    )


def reports(report_dir: Path) -> dict[int, dict[str, Any]]:
    return {int(p.stem): json.loads(p.read_text()) for p in report_dir.glob("*.json")}


def test_writes_a_final_report_at_exit_with_the_warning_culprit(tmp_path: Path) -> None:
    run_with_probe(WARN, tmp_path)
    (path,) = tmp_path.glob("*.json")
    data = json.loads(path.read_text())
    assert data["pid"] == int(path.stem)
    assert data["final"] is True
    assert data["reenabled_by"] and "fake_ext" in data["reenabled_by"][0]
    expected = bool(getattr(sys, "_is_gil_enabled", lambda: True)())
    assert data["gil_enabled_at_end"] is expected


def test_culprit_is_caught_after_logging_captures_warnings(tmp_path: Path) -> None:
    # Django's logging setup calls logging.captureWarnings(True), replacing showwarning.
    run_with_probe(f"import logging; logging.captureWarnings(True)\n{WARN}", tmp_path)
    ((_, data),) = reports(tmp_path).items()
    assert "fake_ext" in data["reenabled_by"][0]


def test_forked_children_report_under_their_own_pid(tmp_path: Path) -> None:
    run_with_probe("import os, sys\npid = os.fork()\nif pid == 0: sys.exit(0)\nos.waitpid(pid, 0)", tmp_path)
    found = reports(tmp_path)
    assert len(found) == 2
    assert all(r["final"] for r in found.values())


def test_multiprocessing_fork_child_reports_although_atexit_is_cleared(tmp_path: Path) -> None:
    # granian's workers on 3.13: multiprocessing's fork child clears atexit and ends in os._exit.
    code = (
        "import multiprocessing as mp\n"
        "p = mp.get_context('fork').Process(target=print, args=('child',))\n"
        "p.start(); p.join()\n"
        "print(p.pid)\n"
    )
    out = run_with_probe(code, tmp_path).stdout.split()
    found = reports(tmp_path)
    assert int(out[-1]) in found
    assert found[int(out[-1])]["final"] is True
    assert len(found) == 2


def test_killed_process_leaves_a_non_final_report(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", script("import time; time.sleep(60)")],
        env=probe_env(tmp_path),
    )
    try:
        deadline = time.monotonic() + 20
        while not list(tmp_path.glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    found = reports(tmp_path)
    assert set(found) == {proc.pid}
    assert found[proc.pid]["final"] is False
    assert found[proc.pid]["watch_interval_s"] == WATCH_INTERVAL_S


def test_non_final_report_follows_a_change_of_state(tmp_path: Path) -> None:
    # The warning stands in for the GIL being re-enabled: the watcher rewrites the report.
    proc = subprocess.Popen(
        [sys.executable, "-c", script(f"import time; time.sleep(1)\n{WARN}\ntime.sleep(60)")],
        env=probe_env(tmp_path),
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = reports(tmp_path) if list(tmp_path.glob("*.json")) else {}
            if found and found[proc.pid]["reenabled_by"]:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    data = reports(tmp_path)[proc.pid]
    assert data["final"] is False and "fake_ext" in data["reenabled_by"][0]


def test_subprocess_with_preexec_fn_leaves_no_report_for_the_exec_d_program(tmp_path: Path) -> None:
    # preexec_fn runs the at-fork hooks in the child, which then execs another program.
    code = "import subprocess\nsubprocess.run(['true'], preexec_fn=lambda: None, check=True)\n"
    run_with_probe(code, tmp_path)
    assert len(reports(tmp_path)) == 1


def test_does_nothing_without_the_variable(tmp_path: Path) -> None:
    run_with_probe("pass", None)
    assert not list(tmp_path.iterdir())
