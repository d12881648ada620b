from __future__ import annotations

from typing import Any

from lab.gilstate import verdict
from lab.measure import judge_load


def test_error_samples_with_newlines_become_valid_pyperf_metadata() -> None:
    import pyperf

    from lab.measure import one_line_metadata

    md = one_line_metadata({"name": "x", "load_error_samples": "TimeoutError | server log: a\nb\nc", "n": 3})
    assert md["load_error_samples"] == "TimeoutError | server log: a | b | c" and md["n"] == 3
    pyperf.Run([0.1], metadata=md, collect_metadata=False)  # raised ValueError before


def load_md(**kw: Any) -> dict[str, Any]:
    return {"load_ok": 100, "load_errors": 0, "load_requests": 100, "load_error_samples": "-", "load_busy": 0.1, **kw}


def test_a_saturated_load_generator_invalidates_the_cell() -> None:
    ok = verdict([{"gil_enabled_at_end": False, "gil_enabled_at_start": False}], free_threaded=True)
    assert judge_load(load_md(), ok) == ("ok", "")
    status, reason = judge_load(load_md(load_busy=0.95), ok)
    assert status == "invalid" and reason == "load generator saturated: busy 95% of the cell's wall time"
    status, reason = judge_load(load_md(load_errors=2), ok)
    assert status == "failed" and reason.startswith("2 of 100 requests failed")
