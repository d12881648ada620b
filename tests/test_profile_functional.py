"""``lab profile`` end to end on both built interpreters, against tests/example_project
and tests/example_project_gil (a local dependency whose C extension re-enables the GIL).

Functional: builds (or reuses) CPython 3.13 and 3.13t, installs the example's requirements
into its own environments (cached after the first run), starts real servers. The plan is
short (2 rounds of 0.5 s, 4 connections): this checks the pipeline, not the numbers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psutil
import pyperf
import pytest

from lab.cli import main

EXAMPLE = Path(__file__).resolve().parent / "example_project"
EXAMPLE_GIL = Path(__file__).resolve().parent / "example_project_gil"
SHORT = ["--rounds", "2", "--duration", "0.5", "--warmup", "0.2", "--connections", "4", "--count-requests", "5"]


def _children() -> set[int]:
    """Live processes under this one (other tests' session fixtures may own some already)."""
    return {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}


@pytest.mark.functional
def test_profile_example_project_on_both_builds(tmp_path: Path) -> None:
    before = _children()
    code = main(
        [
            "-q",
            "profile",
            "--project",
            str(EXAMPLE),
            "--endpoints",
            str(EXAMPLE / "endpoints.toml"),
            "--results-dir",
            str(tmp_path),
            "--run-id",
            "example",
            *SHORT,
        ]
    )
    run = tmp_path / "example"
    doc = json.loads((run / "profile.json").read_text())
    bad = [(c["endpoint"], c["form"], c["interpreter"], c["reason"]) for c in doc["cells"] if c["status"] != "ok"]
    assert code == 0, bad
    assert sorted(doc["interpreters"]) == ["cpython-3.13", "cpython-3.13t"]
    assert len(doc["cells"]) == 2 * 7  # orders: 3 forms, account and slow-upstream: 2 each
    assert all(not c["reenables_gil"] for c in doc["package_checks"].values())
    for interp in ("cpython-3.13", "cpython-3.13t"):
        counts = doc["counts"][interp]
        # One select_related query for the page, under every form; sync WSGI never crosses.
        assert {form: c["sql_statements"] for form, c in counts["orders"].items()} == {
            "wsgi": 1.0,
            "asgi": 1.0,
            "asgi-after": 1.0,
        }
        assert counts["orders"]["wsgi"]["crossings"] == 0
        assert counts["orders"]["asgi"]["crossings"] >= 1  # the sync view adapted
        assert counts["orders"]["wsgi"]["db_connections_opened"] == 1.0  # CONN_MAX_AGE=0: one per request
        # The session and its user are read from the database: the login cookie worked.
        assert counts["account"]["wsgi"]["sql_statements"] >= 3
        assert counts["slow-upstream"]["wsgi"]["sql_statements"] == 0
        assert counts["slow-upstream"]["wsgi"]["wall_ms"] >= 20  # the upstream's 20 ms
        suite = pyperf.BenchmarkSuite.load(str(run / "raw" / f"{interp}.json"))
        assert len(suite.get_benchmarks()) == 7
        assert all(b.get_nrun() == 2 for b in suite.get_benchmarks())
    # Each slice's connections started spread over its form's counted wall time (>= 20 ms here).
    slow = [r["load_stagger_ms"] for c in doc["cells"] if c["endpoint"] == "slow-upstream" for r in c["rounds"]]
    assert len(slow) == 2 * 2 * 2 and min(slow) >= 20
    report = (run / "report.md").read_text()
    for section in ("## orders: GET `/orders/` (after: `/orders/async/`)", "## account:", "## slow-upstream:"):
        assert section in report
    assert _children() <= before


@pytest.mark.functional
def test_profile_stops_at_an_unexpected_status_leaving_nothing_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    endpoints = project / "endpoints.toml"
    endpoints.write_text(endpoints.read_text() + '\n[[endpoint]]\nname = "missing"\npath = "/nope/"\n')
    before = _children()
    code = main(
        [
            "-q",
            "profile",
            "--project",
            str(project),
            "--endpoints",
            str(endpoints),
            "--results-dir",
            str(tmp_path / "results"),
            "--run-id",
            "x",
            *SHORT,
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: endpoint 'missing' (GET /nope/ under wsgi) answered 404, expected 200 on cpython-3.13"
    assert not (tmp_path / "results" / "x").exists()
    assert _children() <= before


@pytest.mark.functional
def test_profile_names_the_dependency_that_reenables_the_gil_and_invalidates_313t(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A copy: pip builds the local package in its own tree (build/, *.egg-info). The
    # environments are keyed by the package's contents, not its place, so they are reused.
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE_GIL, project, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    before = _children()
    code = main(
        [
            "-q",
            "profile",
            "--project",
            str(project),
            "--endpoints",
            str(project / "endpoints.toml"),
            "--results-dir",
            str(tmp_path / "results"),
            "--run-id",
            "gil",
            *SHORT,
        ]
    )
    reason = "the GIL is re-enabled on import by gilpkg (module gilpkg._speedups)"
    assert code == 6  # MeasurementFailed: the run finished, some cells invalid
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: 2 of 4 cells not ok: checksum ")
    assert f"invalid ({reason})" in err[-1]
    run = tmp_path / "results" / "gil"
    doc = json.loads((run / "profile.json").read_text())
    checks = doc["package_checks"]
    assert checks["cpython-3.13t"]["reenables_gil"] == ["gilpkg (module gilpkg._speedups)"]
    assert checks["cpython-3.13t"]["invalid_reason"] == reason
    assert checks["cpython-3.13"]["invalid_reason"] == ""  # the check only runs where the GIL can be off
    status = {(c["interpreter"], c["form"]): (c["status"], c["reason"]) for c in doc["cells"]}
    assert status == {
        ("cpython-3.13", "wsgi"): ("ok", ""),
        ("cpython-3.13", "asgi"): ("ok", ""),
        ("cpython-3.13t", "wsgi"): ("invalid", reason),
        ("cpython-3.13t", "asgi"): ("invalid", reason),
    }
    # The servers' own GIL reports agree: the extension turned the GIL on while serving.
    for cell in doc["cells"]:
        if cell["interpreter"] == "cpython-3.13t":
            assert cell["gil"]["gil_enabled_at_end"] == 1, cell["gil"]
            assert "gilpkg._speedups" in cell["gil"]["gil_reenabled_by"]
    report = (run / "report.md").read_text()
    assert f"**cpython-3.13t cells invalid: {reason}.**" in report
    # Invalid cells keep their rounds in the pyperf JSON, labelled as such.
    suite = pyperf.BenchmarkSuite.load(str(run / "raw" / "cpython-3.13t.json"))
    assert {b.get_metadata()["lab_status"] for b in suite.get_benchmarks()} == {"invalid"}
    assert _children() <= before
