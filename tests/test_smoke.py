"""End-to-end: a tiny compare on both built interpreters (builds them if not cached).

Set LAB_CPYTHON_SOURCE to a directory holding the release tarball where python.org is
unreachable (CI does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.build import ensure_built
from lab.envs import WORKLOADS_DIR, WorkloadEnv, ensure_env
from lab.proc import child_env
from lab.spec import load_interpreter

pytestmark = [pytest.mark.functional, pytest.mark.smoke]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def envs() -> Iterator[list[WorkloadEnv]]:
    yield [ensure_env(ensure_built(load_interpreter(n), "fast")) for n in ("cpython-3.13", "cpython-3.13t")]


def lab(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "lab", "-q", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_every_variant_returns_the_same_body_on_both_interpreters(envs: list[WorkloadEnv], tmp_path: Path) -> None:
    digests = {}
    for env in envs:
        vars_ = child_env({"PYTHONPATH": str(WORKLOADS_DIR), "LAB_DATA_DIR": str(tmp_path / env.interpreter.spec_name)})
        subprocess.run([str(env.python), "-m", "shop.seed"], cwd=WORKLOADS_DIR, env=vars_, check=True)
        out = subprocess.run(
            [str(env.python), "-m", "labsite.inprocess"],
            cwd=WORKLOADS_DIR,
            env=vars_,
            check=True,
            capture_output=True,
            text=True,
        )
        responses = json.loads(out.stdout)
        assert set(responses) == {"sync", "async", "bridged", "sync-on-asgi"}
        assert {r["status"] for r in responses.values()} == {200}
        digests[env.interpreter.spec_name] = {r["sha256"] for r in responses.values()}
    assert digests["cpython-3.13"] == digests["cpython-3.13t"]
    assert len(digests["cpython-3.13"]) == 1, "variants returned different bodies"


def test_smoke_compare_writes_pyperf_json_and_table(envs: list[WorkloadEnv], tmp_path: Path) -> None:
    done = lab("compare", "--plan", "smoke", "--results-dir", str(tmp_path), "--run-id", "smoke")
    assert done.returncode == 0, done.stderr
    assert "3.13t/3.13" in done.stdout
    run = tmp_path / "smoke"
    for variant in ("sync", "async"):
        assert f"│ http    │ {variant}" in done.stdout
    assert sorted(p.name for p in (run / "raw").glob("*.json")) == ["cpython-3.13.json", "cpython-3.13t.json"]
    assert (run / "report.md").is_file() and (run / "tables" / "summary.csv").is_file()
    assert not list(tmp_path.glob(".*partial"))

    compared = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyperf",
            "compare_to",
            str(run / "raw" / "cpython-3.13.json"),
            str(run / "raw" / "cpython-3.13t.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert compared.returncode == 0, compared.stderr
    assert "http/catalog/sync/c4" in compared.stdout or "not significant" in compared.stdout

    cells = json.loads((run / "cells.json").read_text())
    assert len(cells["cells"]) == 8
    for cell in cells["cells"]:
        assert cell["status"] == "ok", cell
        if cell["interpreter"] == "cpython-3.13t":
            assert cell["gil"]["gil_enabled_at_end"] == 0 and cell["gil"]["gil_reports"] >= 1
    import pyperf

    suite = pyperf.BenchmarkSuite.load(str(run / "raw" / "cpython-3.13t.json"))
    md = suite.get_benchmark("http/catalog/async/c4").get_runs()[0].get_metadata()
    assert md["lab_build_profile"] == "fast" and md["lab_py_gil_disabled"] == 1
    assert md["server_kind"] == "uvicorn" and md["server_loop"] == "asyncio" and md["server_http"] == "h11"
    assert md["gil_enabled_at_end"] == 0
    assert md["load_cpu_s"] > 0 and md["server_cpu_s"] > 0


def test_python_gil_1_marks_free_threaded_cells_invalid(envs: list[WorkloadEnv], tmp_path: Path) -> None:
    done = lab(
        "compare",
        "--plan",
        "smoke",
        "--results-dir",
        str(tmp_path),
        "--run-id",
        "gil-on",
        env_extra={"PYTHON_GIL": "1"},
    )
    assert done.returncode == 6
    assert done.stderr.strip().splitlines()[-1].startswith("error: 4 of 8 cells not ok")
    cells = json.loads((tmp_path / "gil-on" / "cells.json").read_text())["cells"]
    ft = [c for c in cells if c["interpreter"] == "cpython-3.13t"]
    assert ft and all(c["status"] == "invalid" and "PYTHON_GIL=1" in c["reason"] for c in ft)
    assert all(c["status"] == "ok" for c in cells if c["interpreter"] == "cpython-3.13")
