"""The report on a committed fixture of raw files whose answers are known in advance
(see tests/fixtures/make_synthetic_run.py for how they were chosen)."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
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


def one(frame: pd.DataFrame, **match: Any) -> dict[str, Any]:
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
    # C1 weighs the cost per crossing against server CPU per request (5 crossings, 5 ms);
    # the fixture's crossing values all come from one pyperf process, and values of one
    # process are not independent: with no interval over processes C1 cannot be decided.
    assert claims.loc["C1", "gil_verdict"] == "inconclusive"
    assert claims.loc["C1", "ft_verdict"] == "inconclusive"
    assert "95% interval over 1 processes" in str(claims.loc["C1", "ft_evidence"])
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


def section(text: str, title: str) -> list[str]:
    """The lines of one ``## title`` section of report.md."""
    lines = text.splitlines()
    start = lines.index(f"## {title}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start + 1 : end]


def bullet(lines: list[str], start: str) -> str:
    (found,) = [line for line in lines if line.startswith(start)]
    return found


def test_the_report_opens_with_the_answer_in_words(run: Path) -> None:
    _table, text = render(run)
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[0] == "## The answer"
    answer = section(text, "The answer")
    cpu = bullet(answer, "- **CPU-bound** (cpu-heavy)")
    # Best against best: sync on gunicorn-sync:2 185 vs async 90 req/s on 3.13; 200 vs 80 on 3.13t.
    assert "on 3.13 **sync** ×2.06" in cpu and "over async" in cpu
    assert "on 3.13t **sync** ×2.50" in cpu
    orm = bullet(answer, "- **ORM, template and CRUD** (orm-reads)")
    assert "on 3.13 too noisy to call" in orm  # sync repeats 70/100/130
    assert "on 3.13t **sync** ×2.00" in orm
    io = bullet(answer, "- **external I/O, sequential**")
    assert "io-sweep@latency=80: **async** ×1.50" in io
    assert bullet(answer, "- **external I/O, fan-out**") == "- **external I/O, fan-out**: not measured in this run."
    change = bullet(answer, "- **What would change it**")
    assert "on 3.13 from ≈ 30 ms" in change and "on 3.13t from ≈ 60 ms" in change
    assert change.index("on 3.13 from") < change.index("on 3.13t from")
    assert "C7 (3.13t)" in bullet(answer, "- **The article's claims**")
    page = (run / "report.html").read_text()
    assert page.index("<h2>The answer</h2>") < page.index("<img")
    assert "on 3.13t <strong>sync</strong> ×2.50" in page


def test_noisy_cells_are_listed_and_not_quoted(run: Path) -> None:
    _table, text = render(run)
    headline = bullet(section(text, "Headline: 3.13t / 3.13 throughput"), "- `sync` over HTTP")
    # 10 sync HTTP cells, orm-reads (3.13 CV 30%) left out.
    assert "across 9 cells" in headline and "1 too noisy to quote" in headline
    noisy = section(text, "Too noisy to quote")
    rows = [line for line in noisy if line.startswith("| ")]
    assert any("decision on 3.13 | orm-reads | sync ≈ async" in r and "sync CV 30.0%" in r for r in rows)
    assert any(
        "http cell 3.13t / 3.13 | orm-reads |" in r and "(sync on gunicorn-gthread:1x8" in r and "3.13 CV 30.0%" in r
        for r in rows
    )
    assert all("cpu-heavy" not in r for r in rows)


def test_one_rss_statistic_units_in_headers_and_constant_columns_named_once(run: Path) -> None:
    table, text = render(run)
    http = section(text, "Every cell: 3.13 and 3.13t side by side")
    # Every HTTP cell of the fixture ran on 2 cores: named once above the table, not a column.
    assert "_cores: 2" in "\n".join(http)
    header = next(line for line in http if line.startswith("| mix |"))
    assert "| cores |" not in header
    assert "3.13 RSS MiB" in header and "3.13 p50 / p95 / p99 ms" in header and "3.13t / 3.13 req/s" in header
    row = one(table, tier="http", point="cpu-heavy", variant="sync", server="gunicorn-sync:2", concurrency=32)
    assert row["gil_rss_mib"] == pytest.approx(200.0)  # the mean RSS (the peak is 220)
    assert "peak" not in "\n".join(http).lower()


def test_latency_curves_come_from_the_hdr_histograms(run: Path) -> None:
    from hdrh.histogram import HdrHistogram

    from lab import plots

    data = load_run(run)
    rows = data.values[
        (data.values["point"] == "cpu-heavy")
        & (data.values["variant"] == "sync")
        & (data.values["role"] == "gil")
        & (data.values["server_spec"] == "gunicorn-sync:2")
        & (data.values["concurrency"] == 32)
        & (data.values["load_mode"] == "closed")
    ]
    curve = plots._curve(run, rows)
    assert curve is not None
    xs, ys, from_histograms = curve
    assert from_histograms and xs[0] == 1.0
    # 600 latencies (3 rounds x 200) from 10 to 40 ms: p50 near 25 ms, never above the max.
    p50 = ys[np.searchsorted(xs, 2.0)]
    assert 24.0 < p50 < 26.5
    assert ys.max() <= 40.1
    # The fast path reads the counts array: it agrees with hdrh's own percentiles.
    encoded = (run / rows.iloc[0]["histogram_file"]).read_text().strip()
    hist = HdrHistogram.decode(encoded)
    values, counts = plots._histogram(run, rows.iloc[0].to_dict())  # type: ignore[misc]
    wanted = np.array([1.0, 50.0, 90.0, 99.0, 99.9, 100.0])
    assert list(plots.value_at(values, counts, wanted)) == [hist.get_value_at_percentile(p) for p in wanted]
    # Without the files the recorded p50 / p95 / p99 / p99.9 are drawn instead.
    shutil.rmtree(run / "raw" / "histograms")
    fallback = plots._curve(run, rows)
    assert fallback is not None and not fallback[2]
    assert list(fallback[1]) == pytest.approx([10.0, 20.0, 30.0, 45.0])


def test_ties_are_drawn_as_ties() -> None:
    from lab import plots

    tie = {"winner": "async", "decided": False, "margin": 1.05, "verdict": "async ≈ sync (×1.05 [0.9, 1.2], n.s.)"}
    won = {"winner": "async", "decided": True, "margin": 1.06, "verdict": "async ×1.06 [1.03, 1.08] over sync"}
    assert plots.decision_cell(tie) == (plots.TIE_COLOUR, "async ≈ sync ×1.05")
    assert plots.decision_cell(won) == (plots.VARIANT_COLOUR["async"], "async ×1.06")


def test_sweep_points_sort_numerically() -> None:
    from lab.tables import point_key

    points = ["io-sweep@latency=100", "io-sweep@latency=20", "cpu-heavy", "io-sweep@latency=5 +sync-audit"]
    assert sorted(points, key=point_key) == [
        "cpu-heavy",
        "io-sweep@latency=5 +sync-audit",
        "io-sweep@latency=20",
        "io-sweep@latency=100",
    ]


def test_markdown_tables_name_constant_columns_once() -> None:
    from lab.markup import parse_table, table

    lines = table(
        ["mix", "server", "cores", "CPU ms", "req/s"],
        [["a", "uvicorn:1", "2", "—", "10"], ["b", "uvicorn:1", "2", "—", "20"]],
        "lllrr",
    )
    assert lines[0] == "_server: uvicorn:1 · cores: 2_"
    header, rows = parse_table(lines[2:])
    assert header == ["mix", "req/s"]  # the all-empty CPU column is dropped
    assert rows == [["a", "10"], ["b", "20"]]
    assert lines[3] == "|---|---:|"
    one_row = table(["mix", "cores"], [["a", "2"]], "lr")
    assert one_row[0] == "| mix | cores |"  # a single row keeps every column


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,2000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.functional
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian: apt-get install -y chromium)")
def test_report_html_in_a_real_browser(run: Path, tmp_path: Path) -> None:
    from matplotlib import image

    render(run)
    page = run / "report.html"
    png = tmp_path / "report.png"
    done = chromium([f"--screenshot={png}", page.as_uri()], tmp_path / "profile-shot")
    assert png.is_file(), done.stderr[-2000:]
    pixels = image.imread(str(png))
    assert pixels.shape[:2] == (2000, 1400)
    colours = {tuple(np.round(p[:3] * 255).astype(int)) for p in pixels[::7, ::7].reshape(-1, pixels.shape[2])}
    assert len(colours) > 50, "the screenshot is blank or nearly so"
    # The interpreters' colours of the plots are on the first screen (throughput panels).
    assert {(76, 114, 176), (221, 132, 82)} <= colours
    # No horizontal scrolling at 1400 px: the page measures itself and puts its width in the title.
    probe = tmp_path / "probe.html"
    probe.write_text(
        page.read_text().replace(
            "</body>",
            "<script>document.title = 'W=' + document.documentElement.scrollWidth;</script></body>",
        )
    )
    dom = chromium(["--dump-dom", probe.as_uri()], tmp_path / "profile-dom").stdout
    match = re.search(r"<title>W=(\d+)</title>", dom)
    assert match, dom[:500]
    assert int(match[1]) <= 1400
