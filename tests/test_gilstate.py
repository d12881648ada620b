from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lab.gilstate import read_reports, verdict
from lab.servers import expected_gil_reports, parse_server

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


SHAPES = ["gunicorn-sync:1", "gunicorn-gthread:2x4", "uvicorn:1", "uvicorn:2", "granian-wsgi:2x4", "granian-asgi:1"]


@pytest.mark.parametrize("free_threaded", [True, False])
@pytest.mark.parametrize("text", SHAPES)
def test_a_missing_report_makes_a_free_threaded_cell_invalid(text: str, free_threaded: bool) -> None:
    expected = expected_gil_reports(parse_server(text), free_threaded=free_threaded)
    received = [report(pid=pid) for pid in range(1, expected)]  # one process left no report
    v = verdict(received, free_threaded=free_threaded, expected=expected)
    assert v.metadata()["gil_reports"] == expected - 1
    assert v.metadata()["gil_reports_expected"] == expected
    if free_threaded:
        assert (v.status, v.reason) == ("invalid", f"GIL state unknown for 1 of {expected} processes")
    else:  # the GIL build records the count and stays ok
        assert (v.status, v.reason) == ("ok", "")
    complete = verdict([*received, report(pid=expected)], free_threaded=free_threaded, expected=expected)
    assert (complete.status, complete.missing) == ("ok", 0)


def test_missing_reports_and_an_enabled_gil_are_both_named() -> None:
    v = verdict([report(pid=1, gil_enabled_at_end=True, reenabled_by=[WARNING])], free_threaded=True, expected=3)
    assert v.status == "invalid"
    assert v.reason == (
        "GIL was enabled at the end in 1 of 1 processes (import of fastjson._speedups); "
        "GIL state unknown for 2 of 3 processes"
    )


def test_more_reports_than_expected_stay_ok_and_are_recorded() -> None:
    # e.g. a worker that crashed and was restarted: every process is still accounted for.
    v = verdict([report(pid=p) for p in (1, 2, 3)], free_threaded=True, expected=2)
    assert (v.status, v.metadata()["gil_reports"], v.metadata()["gil_reports_expected"]) == ("ok", 3, 2)


def test_non_final_reports_count_as_known_and_are_told_apart() -> None:
    v = verdict([report(pid=1, final=True), report(pid=2, final=False)], free_threaded=True, expected=2)
    assert v.status == "ok"
    assert (v.metadata()["gil_reports"], v.metadata()["gil_reports_final"]) == (2, 1)


def test_no_reports_with_an_expected_count_says_how_many_are_unknown() -> None:
    v = verdict([], free_threaded=True, expected=3)
    assert (v.status, v.reason) == ("invalid", "GIL state unknown for 3 of 3 processes")


def test_unknown_expected_count_is_recorded_as_minus_one() -> None:
    assert verdict([report()], free_threaded=True).metadata()["gil_reports_expected"] == -1


def test_expected_count_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 1, got 0"):
        verdict([], free_threaded=True, expected=0)
