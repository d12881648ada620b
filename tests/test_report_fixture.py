"""The report on a committed fixture of raw files whose answers are known in advance
(see tests/fixtures/make_synthetic_run.py for how they were chosen)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lab.decide import best_configs, decide
from lab.merge import render_combined
from lab.report import load_run, render
from lab.tables import axes_table, best_config_table, ft_effect_table, open_loop_table, saturation_table

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "synthetic-run"


@pytest.fixture
def run(tmp_path: Path) -> Path:
    copy = tmp_path / "synthetic-run"
    shutil.copytree(FIXTURE, copy)
    return copy


def one(frame: pd.DataFrame, **match: str) -> dict[str, Any]:
    """The single row of ``frame`` whose columns equal ``match``."""
    rows = [r for r in frame.to_dict("records") if all(r[k] == v for k, v in match.items())]
    assert len(rows) == 1, rows
    return {str(k): v for k, v in rows[0].items()}


def values(run: Path) -> pd.DataFrame:
    return load_run(run).values


def test_break_even_is_interpolated_on_each_interpreter(run: Path) -> None:
    even = decide(values(run)).even
    gil, ft = one(even, role="gil"), one(even, role="ft")
    assert gil["break_even"] == pytest.approx(30.0, abs=0.5)
    assert ft["break_even"] == pytest.approx(60.0, abs=1.0)
    # 1% spread: the interval is tight around the crossing.
    assert 25 < gil["earliest"] <= 30 <= gil["latest"] < 35


def test_claim_verdicts(run: Path) -> None:
    _table, text = render(run)
    claims = pd.read_csv(run / "tables" / "claims.csv").set_index("claim")
    assert claims.loc["C7", "ft_verdict"] == "supported"  # break-even moved from 30 to 60 ms
    assert claims.loc["C1", "gil_verdict"] == "supported"  # 80 vs 30 µs
    assert claims.loc["C1", "ft_verdict"] == "inconclusive"  # 70 vs 69 µs at 1% spread
    assert "| C7 " in text


def test_best_configuration_and_free_threading_effect(run: Path) -> None:
    best = best_config_table(values(run), best_configs(values(run), 100.0))
    cpu = best[(best["point"] == "cpu-heavy") & (best["variant"] == "sync")].set_index("role")
    assert (cpu.loc["gil", "best_server"], cpu.loc["gil", "concurrency"]) == ("gunicorn-sync:2", 32)
    assert (cpu.loc["ft", "best_server"], cpu.loc["ft", "concurrency"]) == ("gunicorn-gthread:1x8", 32)
    assert cpu.loc["gil", "configs_tried"] == 4
    effect = ft_effect_table(values(run), best_configs(values(run), 100.0))
    row = one(effect, point="cpu-heavy", variant="sync")
    assert row["one_thread"] == pytest.approx(0.5)
    assert row["best"] == pytest.approx(200 / 185, rel=1e-3)
    assert row["ft_best"] == "gunicorn-gthread:1x8 @32"


def test_saturation_of_a_flat_curve_is_its_first_level(run: Path) -> None:
    sat = saturation_table(values(run), 100.0)
    row = sat[(sat["server_spec"] == "gunicorn-gthread:1x8") & (sat["role"] == "gil")].iloc[0]
    assert row["saturation_concurrency"] == 8
    assert row["levels"] == "8,32"


def test_memory_axis_prefers_the_threaded_process_per_gib(run: Path) -> None:
    axes = axes_table(values(run))
    gil = axes[(axes["point"] == "cpu-heavy") & (axes["variant"] == "sync") & (axes["role"] == "gil")]
    per_gib = dict(zip(gil["server"], gil["rps_per_gib"], strict=True))
    assert per_gib["gunicorn-gthread:1x8"] == pytest.approx(102 / (100 / 1024), rel=1e-3)
    assert per_gib["gunicorn-sync:2"] == pytest.approx(185 / (200 / 1024), rel=1e-3)
    _table, text = render(run)
    assert "- cpu-heavy on 3.13 at 2 cores: sync on gunicorn-gthread:1x8 (1,044 req/s per GiB" in text


def test_open_loop_latency_table(run: Path) -> None:
    table = open_loop_table(values(run)).set_index("role")
    assert table.loc["gil", "p99_ms"] == pytest.approx(30.0)
    assert table.loc["ft", "p99_ms"] == pytest.approx(20.0)
    assert table.loc["gil", "offered_rps"] == pytest.approx(51.0)


def test_noisy_cells_are_flagged(run: Path) -> None:
    table, text = render(run)
    noisy = table[table["noisy"]]
    assert list(zip(noisy["point"], noisy["variant"], strict=True)) == [("orm-reads", "sync")]
    assert "⚠" in text


def test_outputs_and_plots_are_written(run: Path) -> None:
    render(run)
    for name in ("summary", "ft-effect", "best-config", "saturation", "open-loop", "axes", "claims"):
        assert (run / "tables" / f"{name}.csv").is_file(), name
    for name in ("throughput", "throughput-vs-concurrency", "latency-percentiles", "break-even", "decision-map"):
        assert (run / "plots" / f"{name}.png").stat().st_size > 1000, name
    assert "data:image/png;base64," in (run / "report.html").read_text()


def test_combined_report_flags_unstable_cells_and_keeps_machines_apart(run: Path, tmp_path: Path) -> None:
    second = tmp_path / "second-run"
    shutil.copytree(run, second)
    # Make the 3.13t side of one cell 10% faster in the second run: its ratio moves 10%.
    raw = second / "raw" / "cpython-3.13t.json"
    import pyperf

    suite = pyperf.BenchmarkSuite.load(str(raw))
    benches = []
    for bench in suite:
        if bench.get_name() == "http/orm-reads/async/c32/uvicorn:1":
            runs = [
                pyperf.Run([v / 1.1 for v in r.values], metadata=r.get_metadata(), collect_metadata=False)
                for r in bench.get_runs()
            ]
            bench = pyperf.Benchmark(runs)
        benches.append(bench)
    pyperf.BenchmarkSuite(benches).dump(str(raw), replace=True)
    text = render_combined([run, second], tmp_path / "combined")
    assert "| orm-reads | async | uvicorn:1 | closed | 32 |" in text
    stability = pd.read_csv(tmp_path / "combined" / "tables" / "stability.csv")
    unstable = stability[stability["unstable"]]
    assert list(unstable["point"]) == ["orm-reads"]
    assert unstable["change"].iloc[0] == pytest.approx(0.10, abs=0.001)
    # Another machine: side by side, no stability rows (never treated as repeats).
    import json

    cells = json.loads((second / "cells.json").read_text())
    cells["machine"]["hostname"] = "other-box"
    (second / "cells.json").write_text(json.dumps(cells))
    text = render_combined([run, second], tmp_path / "combined2")
    assert "run-to-run stability" not in text.lower()
    assert "other-box" in text


def test_runs_with_different_interpreters_are_refused_unless_allowed(run: Path, tmp_path: Path) -> None:
    import json

    from lab.errors import SpecError

    second = tmp_path / "other"
    shutil.copytree(run, second)
    cells = json.loads((second / "cells.json").read_text())
    cells["interpreters"]["cpython-3.13"]["build_profile"] = "release"
    (second / "cells.json").write_text(json.dumps(cells))
    with pytest.raises(SpecError, match="pass --allow-mixed"):
        render_combined([run, second], tmp_path / "c")
    text = render_combined([run, second], tmp_path / "c", allow_mixed=True)
    assert "release" in text
    assert not math.isnan(1.0)
