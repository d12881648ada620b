from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyperf
import pytest

from lab import FORMAT_VERSION
from lab.errors import LabError
from lab.report import cell_reason, load_run, render
from lab.stats import mean_ci, ratio_ci

INTERPRETERS = {"cpython-3.13": "gil", "cpython-3.13t": "ft"}


def bench(
    name: str, role: str, rps: list[float], status: str = "ok", p95: float = 10.0, **extra: Any
) -> pyperf.Benchmark:
    runs = []
    for repeat, value in enumerate(rps):
        md: dict[str, Any] = {
            "name": "http/catalog/sync/c8",
            "unit": "second",
            "lab_interpreter": name,
            "lab_role": role,
            "lab_build_profile": "fast",
            "lab_tier": "http",
            "lab_mix": "orm-reads",
            "lab_point": "orm-reads",
            "crossings_sync_to_async": 0,
            "lab_variant": "sync",
            "lab_concurrency": 8,
            "lab_status": status,
            "lab_reason": "-" if status == "ok" else "GIL was enabled",
            "lab_repeat": repeat,
            "latency_p95_ms": p95,
            "server_kind": "gunicorn-gthread",
            "server_workers": 1,
            "server_threads": 8,
            "gil_enabled_at_end": int(status != "ok"),
            **extra,
        }
        runs.append(pyperf.Run([1.0 / value], metadata=md, collect_metadata=False))
    return pyperf.Benchmark(runs)


def make_run(tmp_path: Path, gil: list[float], ft: list[float], ft_status: str = "ok") -> Path:
    run = tmp_path / "run"
    (run / "raw").mkdir(parents=True)
    for name, role in INTERPRETERS.items():
        values, status = (gil, "ok") if role == "gil" else (ft, ft_status)
        pyperf.BenchmarkSuite([bench(name, role, values, status)]).dump(str(run / "raw" / f"{name}.json"))
    cells = [
        {
            "interpreter": "cpython-3.13t",
            "tier": "http",
            "variant": "sync",
            "concurrency": 8,
            "repeat": 0,
            "status": ft_status,
            "reason": "GIL was enabled at the end in 1 of 2 processes (import of x)",
            "bench_name": "http/catalog/sync/c8",
        }
    ]
    interp = {
        "version": "3.13.15",
        "build_profile": "fast",
        "configure_flags": [],
        "py_gil_disabled": False,
        "packages": {"django": "6.1.3"},
    }
    (run / "cells.json").write_text(
        json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "plan": {"name": "t", "repeats": 3},
                "machine": {"cpu_count": 2},
                "interpreters": {n: interp for n in INTERPRETERS},
                "cells": cells,
            }
        )
    )
    return run


def test_mean_ci_uses_student_t() -> None:
    mean, half = mean_ci([100.0, 110.0, 120.0])
    assert mean == 110.0
    assert half == pytest.approx(4.303 * 10 / math.sqrt(3))
    assert math.isnan(mean_ci([5.0])[1])


def test_ratio_interval_brackets_the_ratio() -> None:
    ratio, low, high = ratio_ci([200.0, 220.0, 240.0], [100.0, 110.0, 120.0], paired=False)
    assert ratio == pytest.approx(2.0)
    assert 1.6 < low < 2.0 < high < 2.5


def test_table_has_throughput_ci_and_ratio(tmp_path: Path) -> None:
    run = make_run(tmp_path, gil=[100.0, 110.0, 120.0], ft=[200.0, 220.0, 240.0])
    table, text = render(run)
    (row,) = table.to_dict("records")
    assert row["gil_rps"] == pytest.approx(110.0)
    assert row["ft_rps"] == pytest.approx(220.0)
    assert row["gil_ci"] == pytest.approx(24.84, abs=0.01)
    assert row["ft_over_gil"] == pytest.approx(2.0)
    assert row["gil_server"] == "gunicorn gthread 1x8"
    assert (
        "| orm-reads | sync | gunicorn gthread 1x8 | — | closed | 8 | 0 | 110 ± 25 | — / 10.0 / — | — | — | "
        "220 ± 50 | — / 10.0 / — | — | — | 2.00 [" in text
    )
    assert (run / "report.md").read_text() == text
    assert (
        (run / "tables" / "summary.csv")
        .read_text()
        .startswith("tier,point,variant,server,cores,load,rate_rps,concurrency,crossings")
    )


def test_invalid_free_threaded_cells_are_excluded_from_ratios_and_listed(tmp_path: Path) -> None:
    run = make_run(tmp_path, gil=[100.0, 110.0, 120.0], ft=[60.0, 60.0, 61.0], ft_status="invalid")
    table, text = render(run)
    (row,) = table.to_dict("records")
    assert row["ft_status"] == "invalid"
    assert math.isnan(row["ft_over_gil"])
    assert "- INVALID: http/catalog/sync/c8 on cpython-3.13t (repeat 0): GIL was enabled" in text


def test_other_format_versions_are_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path, gil=[1.0], ft=[1.0])
    data = json.loads((run / "cells.json").read_text())
    data["format_version"] = 99
    (run / "cells.json").write_text(json.dumps(data))
    with pytest.raises(LabError, match="format_version 99; this lab reads 1"):
        render(run)


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="is not a lab run directory"):
        render(tmp_path)


def test_the_probe_write_lock_wait_is_loaded_and_reported_where_recorded(tmp_path: Path) -> None:
    run = make_run(tmp_path, gil=[100.0, 110.0, 120.0], ft=[200.0, 220.0, 240.0])
    # Rewrite 3.13t's file with the probe's counts of a crud request on SQLite.
    crud = bench("cpython-3.13t", "ft", [200.0, 220.0], probe_sql_statements=6, probe_write_lock_wait_us=42)
    pyperf.BenchmarkSuite([crud]).dump(str(run / "raw" / "cpython-3.13t.json"), replace=True)
    values = load_run(run).values
    by_role = values.groupby("role")["write_lock_wait_us"].first()
    assert by_role["ft"] == 42.0 and math.isnan(by_role["gil"])  # NaN where the probe did not report it
    _table, text = render(run)
    assert "SQLite write-lock wait µs per request (probe), 3.13 / 3.13t" in text
    assert "| — / 42 |" in text


def test_a_window_with_no_completed_request_is_not_an_error_rate() -> None:
    assert cell_reason("0 of 0 requests failed: -") == "no request completed in the window"
    assert cell_reason("0 of 0 requests failed: TimeoutError") == "no request completed in the window: TimeoutError"
    assert cell_reason("3 of 100 requests failed: 502") == "3 of 100 requests failed: 502"


def test_conditions_say_how_closed_loop_connections_started() -> None:
    import pandas as pd

    from lab.report import _conditions

    base = {"tier": "http", "point": "long-poll", "load_mode": "closed", "database": "sqlite", "server_config": "x"}
    together = _conditions(pd.DataFrame([{**base, "stagger_ms": 0.0}]))
    assert "connections started together" in together and "depend on the warm-up" in together
    spread = _conditions(pd.DataFrame([{**base, "stagger_ms": 0.0}, {**base, "stagger_ms": 1000.0}]))
    assert "started spread over one nominal wait" in spread
    # Runs from before the stagger existed have no column: started together.
    assert "started together" in _conditions(pd.DataFrame([base]))
