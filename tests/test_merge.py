"""The combined report of several runs: each run's value sits under its own column."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyperf
import pytest

from lab.markup import parse_table
from lab.merge import render_combined
from lab.report import load_run, summary_table

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "synthetic-run"


def scale_ft(run: Path, bench_name: str, factor: float) -> None:
    """Make the 3.13t side of one cell ``factor`` times faster in ``run``."""
    raw = run / "raw" / "cpython-3.13t.json"
    benches = []
    for bench in pyperf.BenchmarkSuite.load(str(raw)):
        if bench.get_name() == bench_name:
            runs = [
                pyperf.Run([v / factor for v in r.values], metadata=r.get_metadata(), collect_metadata=False)
                for r in bench.get_runs()
            ]
            bench = pyperf.Benchmark(runs)
        benches.append(bench)
    pyperf.BenchmarkSuite(benches).dump(str(raw), replace=True)


def drop_bench(run: Path, bench_name: str) -> None:
    for name in ("cpython-3.13.json", "cpython-3.13t.json"):
        raw = run / "raw" / name
        kept = [b for b in pyperf.BenchmarkSuite.load(str(raw)) if b.get_name() != bench_name]
        pyperf.BenchmarkSuite(kept).dump(str(raw), replace=True)


def per_run_table(text: str) -> tuple[list[str], list[list[str]]]:
    lines = text.splitlines()
    start = lines.index("## 3.13t / 3.13 throughput per run")
    rows = [line for line in lines[start:] if line.startswith("|")]
    return parse_table(rows)


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "run-a", tmp_path / "run-b"
    shutil.copytree(FIXTURE, a)
    shutil.copytree(FIXTURE, b)
    scale_ft(b, "http/orm-reads/async/c32/uvicorn:1", 1.25)
    drop_bench(b, "http/cpu-heavy/async/c32/uvicorn:1")  # a cell only run a measured
    return a, b


def test_each_value_lands_under_its_own_run(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_runs
    text = render_combined([a, b], tmp_path / "combined")
    header, rows = per_run_table(text)
    assert header == ["tier", "mix", "variant", "server", "cores", "load", "connections", "run-a", "run-b"]
    assert rows and all(len(row) == len(header) for row in rows), "a row has more or fewer cells than the header"
    cells = {(r[1], r[2], r[3], r[5], r[6]): dict(zip(header, r, strict=True)) for r in rows}
    expected = {
        run.name: {
            (r["point"], r["variant"], r["server"], r["load"], str(r["concurrency"])): r["ft_over_gil"]
            for r in summary_table(load_run(run)).to_dict("records")
        }
        for run in (a, b)
    }
    orm_async = cells[("orm-reads", "async", "uvicorn:1", "closed", "32")]
    assert orm_async["cores"] == "2"
    assert orm_async["run-a"].startswith(
        f"{expected['run-a'][('orm-reads', 'async', 'uvicorn:1', 'closed', '32')]:.2f}"
    )
    assert orm_async["run-b"].startswith(
        f"{expected['run-b'][('orm-reads', 'async', 'uvicorn:1', 'closed', '32')]:.2f}"
    )
    # The two runs differ in that cell by the 1.25 the second run's 3.13t side was scaled by.
    ratio_a, ratio_b = (float(orm_async[n].split()[0]) for n in ("run-a", "run-b"))
    assert ratio_b / ratio_a == pytest.approx(1.25, rel=0.02)
    only_a = cells[("cpu-heavy", "async", "uvicorn:1", "closed", "32")]
    assert only_a["run-a"] != "—" and only_a["run-b"] == "—"
    stability = pd.read_csv(tmp_path / "combined" / "tables" / "stability.csv")
    assert list(stability[stability["unstable"]]["point"]) == ["orm-reads"]


def test_sweep_points_are_in_numeric_order(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    text = render_combined(list(two_runs), tmp_path / "combined")
    _header, rows = per_run_table(text)
    sweep = [r[1] for r in rows if r[1].startswith("io-sweep") and r[2] == "sync"]
    assert sweep == [f"io-sweep@latency={v}" for v in (0, 20, 40, 80)]


def test_the_stability_section_says_where_the_changes_are(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    text = render_combined(list(two_runs), tmp_path / "combined")
    lines = text.splitlines()
    start = lines.index("Where the changes are, by server (tier for handler cells):") + 2
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    header, rows = parse_table(lines[start:end])
    assert header == ["server", "cells", "within 5%", "median change", "largest change"]
    by_server = {r[0]: r for r in rows}
    # The only cell scaled (×1.25) is orm-reads async on uvicorn:1: that row has one cell not within 5%.
    uvicorn = by_server["uvicorn:1"]
    assert int(uvicorn[2]) == int(uvicorn[1]) - 1 and uvicorn[4] == "25.0%"
