from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parent.parent / "lab" / "gilprobe.py"

pytestmark = pytest.mark.functional


def run_with_probe(tmp_path: Path, code: str, report_dir: Path | None) -> subprocess.CompletedProcess[str]:
    # Import the probe first, as the .pth line does in a workload environment.
    script = f"import runpy; runpy.run_path({str(PROBE)!r}, run_name='_lab_gilprobe')\n{code}"
    env = {"PATH": "/usr/bin:/bin"}
    if report_dir is not None:
        env["LAB_GIL_REPORT_DIR"] = str(report_dir)
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)


def test_writes_a_report_at_exit_with_the_warning_culprit(tmp_path: Path) -> None:
    warn = (
        'import warnings; warnings.warn("The global interpreter lock (GIL) has been enabled to load module '
        "'fake_ext', which has not declared that it can run safely without the GIL.\", RuntimeWarning)"
    )
    run_with_probe(tmp_path, warn, tmp_path)
    (path,) = tmp_path.glob("*.json")
    data = json.loads(path.read_text())
    assert data["pid"] == int(path.stem)
    assert data["reenabled_by"] and "fake_ext" in data["reenabled_by"][0]
    expected = bool(getattr(sys, "_is_gil_enabled", lambda: True)())
    assert data["gil_enabled_at_end"] is expected


def test_forked_children_report_under_their_own_pid(tmp_path: Path) -> None:
    run_with_probe(tmp_path, "import os, sys\npid = os.fork()\nif pid == 0: sys.exit(0)\nos.waitpid(pid, 0)", tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_does_nothing_without_the_variable(tmp_path: Path) -> None:
    run_with_probe(tmp_path, "pass", None)
    assert not list(tmp_path.iterdir())
