from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lab.gilstate import read_reports, verdict

WARNING = (
    "The global interpreter lock (GIL) has been enabled to load module 'fastjson._speedups', which has not "
    "declared that it can run safely without the GIL."
)


def report(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "pid": 1,
        "gil_enabled_at_start": False,
        "gil_enabled_at_end": False,
        "python_gil_env": None,
        "x_gil_option": "",
        "reenabled_by": [],
    }
    return {**base, **kw}


def test_free_threaded_cell_with_gil_off_everywhere_is_ok() -> None:
    v = verdict([report(pid=1), report(pid=2)], free_threaded=True)
    assert (v.status, v.processes, v.enabled_at_end) == ("ok", 2, False)
    assert v.metadata()["gil_enabled_at_end"] == 0


def test_extension_that_reenables_the_gil_is_named() -> None:
    v = verdict([report(pid=1), report(pid=2, gil_enabled_at_end=True, reenabled_by=[WARNING])], free_threaded=True)
    assert v.status == "invalid"
    assert v.reason == "GIL was enabled at the end in 1 of 2 processes (import of fastjson._speedups)"
    assert v.metadata()["gil_reenabled_by"] == "import of fastjson._speedups"


def test_python_gil_env_is_named() -> None:
    v = verdict([report(gil_enabled_at_start=True, gil_enabled_at_end=True, python_gil_env="1")], free_threaded=True)
    assert v.status == "invalid"
    assert "PYTHON_GIL=1 in the environment" in v.reason


def test_no_reports_means_unknown_and_invalid() -> None:
    v = verdict([], free_threaded=True)
    assert (v.status, v.reason) == ("invalid", "no process reported its GIL state")


def test_gil_build_is_always_valid() -> None:
    v = verdict([report(gil_enabled_at_start=True, gil_enabled_at_end=True)], free_threaded=False)
    assert v.status == "ok" and v.enabled_at_end


def test_read_reports_skips_partial_files(tmp_path: Path) -> None:
    (tmp_path / "1.json").write_text(json.dumps(report(pid=1)))
    (tmp_path / "2.json").write_text("{not json")
    (tmp_path / "3.json.tmp").write_text(json.dumps(report(pid=3)))
    assert [r["pid"] for r in read_reports(tmp_path)] == [1]
