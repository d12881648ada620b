"""Report stage: turn a run's raw pyperf JSON and cells.json into tables, plots and pages.

Reads only the files ``lab.measure`` writes (the JSON is the contract; this module never
imports the measurement code), so ``lab report`` can re-render any earlier run.
Writes ``report.md`` (the answer in words first: ``lab.answer``; then the sections of
``lab.sections``), ``report.html`` (the same markdown converted, plots embedded:
``lab.markup``), ``plots/*.png`` (``lab.plots``) and ``tables/*.csv`` beside the raw data.

Over 400 lines on purpose: it is the reader's side of the JSON contract, so every metadata
key the report reads (``load_run``, the crossing and overhead files) is in this one module
beside the summary table built from them and the page order (``markdown``); the words live
in ``lab.answer`` and ``lab.sections``, the statistics in ``lab.stats``.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyperf

from lab import FORMAT_VERSION, plots, sections, tables
from lab.advise import advise_lines
from lab.answer import Call, answer_lines, calls, noisy_lines, truthy
from lab.claims import ledger
from lab.decide import DEFAULT_SLO_MS, Decisions, decide
from lab.errors import LabError
from lab.files import write_atomic
from lab.limits import busiest_share
from lab.markup import html_page
from lab.stats import NOISY_CV, log_ratio_spread, mean_ci, ratio_ci
from lab.tables import point_key

# The load generator should cost at most this fraction of the server's CPU.
LOAD_SHARE_TARGET = 0.10


@dataclass(frozen=True)
class RunData:
    run_dir: Path
    cells: dict[str, Any]
    values: pd.DataFrame  # one row per pyperf value


# Requests a cell's rounds must add up to before its p99 is shown (10 of them beyond it).
P99_MIN_REQUESTS = 1000


def load_run(run_dir: Path) -> RunData:
    cells_path = run_dir / "cells.json"
    if not cells_path.is_file():
        raise LabError(f"'{run_dir}' is not a lab run directory (no cells.json)")
    cells = json.loads(cells_path.read_text())
    if cells.get("format_version") != FORMAT_VERSION:
        raise LabError(
            f"{cells_path} has format_version {cells.get('format_version')!r}; this lab reads {FORMAT_VERSION}"
        )
    machine = machine_label(cells.get("machine", {}))
    rows: list[dict[str, Any]] = []
    for path in sorted((run_dir / "raw").glob("*.json")):
        suite = pyperf.BenchmarkSuite.load(str(path))
        for bench in suite:
            for run in bench.get_runs():
                md = run.get_metadata()
                for value in run.values:
                    rows.append(
                        {
                            "run": run_dir.name,
                            "machine": machine,
                            "interpreter": md["lab_interpreter"],
                            "role": md["lab_role"],
                            "build_profile": md.get("lab_build_profile", "?"),
                            "tier": md["lab_tier"],
                            "mix": md.get("lab_mix", "?"),
                            "point": md.get("lab_point", md.get("lab_workload", "?")),
                            "crossings": int(md.get("crossings_total", md.get("crossings_sync_to_async", -1))),
                            "middleware": md.get("lab_middleware", "default"),
                            "nominal_wait_ms": float(md.get("lab_nominal_wait_ms", math.nan)),
                            "p50_ms": float(md["latency_p50_ms"]) if "latency_p50_ms" in md else math.nan,
                            "variant": md["lab_variant"],
                            "concurrency": int(md["lab_concurrency"]),
                            "status": md.get("lab_status", "ok"),
                            "reason": md.get("lab_reason", "-"),
                            "gil_enabled_at_end": int(md.get("gil_enabled_at_end", -1)),
                            "seconds_per_request": value,
                            "throughput_rps": 1.0 / value,
                            "p95_ms": float(md["latency_p95_ms"]) if "latency_p95_ms" in md else math.nan,
                            "p99_ms": float(md["latency_p99_ms"]) if "latency_p99_ms" in md else math.nan,
                            "server_cpu_ms_per_req": float(md.get("server_cpu_ms_per_req", math.nan)),
                            "load_cpu_share": float(md.get("load_cpu_share", math.nan)),
                            "upstream_cpu_share": float(md["upstream_cpu_s"]) / float(md["server_cpu_s"])
                            if float(md.get("server_cpu_s", 0) or 0) > 0 and "upstream_cpu_s" in md
                            else math.nan,
                            "server_config": _server_label(md),
                            "server_spec": md.get("server_spec", _server_label(md)),
                            "cores": int(md.get("lab_core_budget", 0)),
                            "cpu_layout": md.get("lab_cpu_layout", "-"),
                            "load_mode": md.get("load_mode", "closed" if "server_kind" in md else "-"),
                            "rate_fraction": float(md.get("load_rate_fraction", 0.0)),
                            "rate_rps": float(md.get("load_rate_rps", 0.0)),
                            "p999_ms": float(md.get("latency_p999_ms", math.nan)),
                            "mean_ms": float(md.get("latency_mean_ms", math.nan)),
                            # The closed loop's requests started in the window per second
                            # (its throughput in runs before 2026-12-06; lab.loadconn.served_in).
                            "started_rps": float(md.get("load_started_rps", math.nan)),
                            # Closed loop: ms over which the connections' first requests were
                            # spread (0: all at once, as in every run before 2026-12-06-stagger).
                            "stagger_ms": float(md.get("load_stagger_ms", 0.0)),
                            "rss_peak_mib": float(md.get("server_rss_peak_mib", math.nan)),
                            "rss_mean_mib": float(md.get("server_rss_mean_mib", math.nan)),
                            # Several workers: the busiest one's share of the connections.
                            "busiest_worker_share": busiest_share(str(md.get("server_connections_per_worker", "-"))),
                            # Paired runs: the round a value belongs to (ratios pair by it) and
                            # whether the cell's rounds stayed too noisy after a re-measure.
                            "repeat": int(md.get("lab_repeat", -1)),
                            "noisy": int(md.get("lab_noisy", 0)),
                            "paired": int(md.get("lab_paired", 0)),
                            # What limited the cell and what its requests did (probe counts,
                            # steady state): lab.limits and lab.accounting read these.
                            "load_busy": float(md.get("load_busy", math.nan)),
                            "requests": int(md.get("load_requests", 0)),
                            "database": str(md.get("lab_database", "-")),
                            "db_pool": str(md.get("lab_db_pool", "unpooled")),
                            "crossings_sync_to_async": int(md.get("crossings_sync_to_async", -1)),
                            "crossings_async_to_sync": int(md.get("crossings_async_to_sync", -1)),
                            "crossings_cold": int(md.get("crossings_cold_total", -1)),
                            "sql_statements": int(md.get("probe_sql_statements", -1)),
                            "upstream_calls": int(md.get("probe_upstream_calls", -1)),
                            "db_connections_opened": int(md.get("probe_db_connections_opened", -1)),
                            # crud on SQLite: µs the probe's request waited for the write lock.
                            "write_lock_wait_us": float(md.get("probe_write_lock_wait_us", math.nan)),
                            "remeasured": int(md.get("lab_attempt", 1)) > 1 or truthy(md.get("lab_remeasured", 0)),
                            "endpoint": str(md.get("lab_endpoint", "")),
                            "query": str(md.get("lab_query", "")),
                            "bench_name": str(md.get("name", "")),
                            "histogram_file": str(md.get("histogram_file", "")),
                        }
                    )
    return RunData(run_dir=run_dir, cells=cells, values=pd.DataFrame(rows))


def crossing_runs(run_dir: Path) -> pd.DataFrame:
    """One row per crossing-benchmark value with the pyperf run (worker process) it came from:
    values of one process are not independent, so intervals are taken over processes."""
    rows: list[dict[str, Any]] = []
    for path in sorted((run_dir / "raw" / "crossings").glob("*.json")):
        for bench in pyperf.BenchmarkSuite.load(str(path)):
            md = bench.get_metadata()
            for index, run in enumerate(bench.get_runs()):
                for value in run.values:  # calibration and warm-up runs have none
                    rows.append(
                        {
                            "kind": md["lab_crossing_kind"],
                            "concurrency": int(md["lab_concurrency"]),
                            "role": md["lab_role"],
                            "run": index,
                            "us": value * 1e6,
                        }
                    )
    return pd.DataFrame(rows)


def crossing_table(run_dir: Path) -> pd.DataFrame:
    """µs per crossing by kind, concurrency and interpreter (mean ± 95% CI over pyperf values)."""
    rows: list[dict[str, Any]] = []
    for path in sorted((run_dir / "raw" / "crossings").glob("*.json")):
        for bench in pyperf.BenchmarkSuite.load(str(path)):
            md = bench.get_metadata()
            values = [v * 1e6 for v in bench.get_values()]
            mean, ci = mean_ci(values)
            rows.append(
                {
                    "kind": md["lab_crossing_kind"],
                    "concurrency": int(md["lab_concurrency"]),
                    "interpreter": md["lab_interpreter"],
                    "role": md["lab_role"],
                    "us": mean,
                    "ci": ci,
                    "n": len(values),
                    "status": md.get("lab_status", "ok"),
                }
            )
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    wide = df.pivot_table(index=["kind", "concurrency"], columns="role", values=["us", "ci"], aggfunc="first")
    wide.columns = [f"{column[1]}_{column[0]}" for column in wide.columns]  # ("us", "ft") -> "ft_us"
    wide = wide.reset_index()
    if {"gil_us", "ft_us"} <= set(wide.columns):
        wide["ft_over_gil"] = wide["ft_us"] / wide["gil_us"]
    return wide


def counter_overhead(run_dir: Path, data: RunData) -> list[str]:
    """What the crossing counter costs: the same handler cell with and without it."""
    lines: list[str] = []
    for path in sorted((run_dir / "raw" / "overhead").glob("*.json")):
        for bench in pyperf.BenchmarkSuite.load(str(path)):
            md = bench.get_metadata()
            counted = [1.0 / v for v in bench.get_values()]
            df = data.values
            plain = df[
                (df["tier"] == "handler")
                & (df["interpreter"] == md["lab_interpreter"])
                & (df["point"] == md["lab_point"])
                & (df["variant"] == md["lab_variant"])
                & (df["concurrency"] == int(md["lab_concurrency"]))
            ]["throughput_rps"].tolist()
            if not plain:
                continue
            ratio, low, high = ratio_ci(plain, counted)
            interval = "" if math.isnan(low) else f" [{(low - 1) * 100:+.1f}%, {(high - 1) * 100:+.1f}%]"
            lines.append(
                f"- {md['lab_interpreter']}, handler {md['lab_point']} {md['lab_variant']} at concurrency "
                f"{md['lab_concurrency']}: time per request {(ratio - 1) * 100:+.1f}%{interval} with the counter on."
            )
    if lines:
        lines = [
            "",
            "Crossing counter overhead (measurement runs keep it off; the counts come from a probe pass):",
            "",
            *lines,
        ]
    return lines


def machine_label(machine: dict[str, Any]) -> str:
    """The machine dimension: host, CPUs and model (runs on different machines never pool)."""
    return f"{machine.get('hostname', '?')} ({machine.get('cpu_count', '?')} CPUs, {machine.get('cpu_model', '?')})"


def _server_label(md: dict[str, Any]) -> str:
    if "server_label" in md:
        return str(md["server_label"])
    kind = md.get("server_kind")
    if not kind:
        return "in-process"
    if kind == "gunicorn-gthread":
        return f"gunicorn gthread {md['server_workers']}x{md['server_threads']}"
    return f"uvicorn {md['server_workers']}w {md['server_loop']}+{md['server_http']}"


def summary_table(data: RunData) -> pd.DataFrame:
    """variant x tier x concurrency x interpreter, with the 3.13t / 3.13 throughput ratio."""
    df = data.values
    if df.empty:
        return pd.DataFrame()
    keys = ["tier", "point", "middleware", "variant", "server_spec", "cores", "rate_fraction", "concurrency"]
    out: list[dict[str, Any]] = []
    for key, group in df.groupby(keys, sort=True):
        tier, point, middleware, variant, server, cores, fraction, conc = key
        by_role = {role: g for role, g in group.groupby("role")}
        row: dict[str, Any] = {
            "tier": tier,
            "point": point if middleware == "default" else f"{point} +{middleware}",
            "variant": variant,
            "server": server,
            "cores": cores,
            "load": f"open {fraction:g}x sat" if fraction else "closed",
            "rate_rps": group["rate_rps"].mean(),
            "concurrency": conc,
            "crossings": int(group["crossings"].max()),
        }
        valid: dict[str, list[float]] = {}
        for role in ("gil", "ft"):
            g = by_role.get(role)
            if g is None:
                row.update(
                    {
                        f"{role}_rps": math.nan,
                        f"{role}_ci": math.nan,
                        f"{role}_cv": math.nan,
                        f"{role}_p50_ms": math.nan,
                        f"{role}_p95_ms": math.nan,
                        f"{role}_p99_ms": math.nan,
                        f"{role}_cpu_ms": math.nan,
                        f"{role}_rss_mib": math.nan,
                        f"{role}_n": 0,
                        f"{role}_status": "missing",
                    }
                )
                continue
            rps = g["throughput_rps"].tolist()
            mean, ci = mean_ci(rps)
            statuses = sorted(set(g["status"]))
            row.update(
                {
                    f"{role}_interpreter": g["interpreter"].iloc[0],
                    f"{role}_rps": mean,
                    f"{role}_ci": ci,
                    f"{role}_cv": statistics.stdev(rps) / mean if len(rps) > 1 else math.nan,
                    f"{role}_p50_ms": g["p50_ms"].mean(),
                    f"{role}_p95_ms": g["p95_ms"].mean(),
                    # A p99 needs a few samples beyond it: shown only when the cell's rounds
                    # together measured P99_MIN_REQUESTS requests (10 beyond the p99).
                    f"{role}_p99_ms": g["p99_ms"].mean()
                    if "requests" not in g.columns
                    or g["requests"].sum() >= P99_MIN_REQUESTS
                    or g["tier"].iloc[0] != "http"
                    else math.nan,
                    f"{role}_requests": int(g["requests"].sum()) if "requests" in g.columns else 0,
                    f"{role}_cpu_ms": g["server_cpu_ms_per_req"].mean(),
                    # One RSS statistic throughout the report: the mean over the cell (the
                    # whole process tree), as the memory axis uses; the peak stays in the CSV.
                    f"{role}_rss_mib": g["rss_mean_mib"].mean(),
                    f"{role}_rss_peak_mib": g["rss_peak_mib"].mean(),
                    f"{role}_n": len(rps),
                    f"{role}_status": "ok" if statuses == ["ok"] else "+".join(statuses),
                    f"{role}_server": g["server_config"].iloc[0],
                }
            )
            if statuses == ["ok"]:
                valid[role] = rps
        if "gil" in valid and "ft" in valid:
            ratio, low, high = ratio_ci(valid["ft"], valid["gil"])
        else:
            # An invalid (e.g. GIL re-enabled) side is excluded from ratios, never averaged in.
            ratio, low, high = math.nan, math.nan, math.nan
        row.update({"ft_over_gil": ratio, "ratio_low": low, "ratio_high": high})
        cvs = [row.get(f"{role}_cv", math.nan) for role in ("gil", "ft")]
        # Too noisy to quote: a cell the measurement marked noisy after re-measuring it
        # (lab_noisy); in paired runs, per-round 3.13t/3.13 ratios that spread more than
        # NOISY_CV (drift shared by a round cancels in its ratio, so raw CVs overstate the
        # noise); in runs measured unpaired, a side whose repeats scatter more than NOISY_CV.
        row["flagged"] = bool("noisy" in group.columns and (group["noisy"] == 1).any())
        row["remeasured"] = bool("remeasured" in group.columns and group["remeasured"].any())
        paired = bool("paired" in group.columns and (group["paired"] == 1).all())
        row["ratio_spread"] = (
            log_ratio_spread(valid["ft"], valid["gil"]) if paired and "gil" in valid and "ft" in valid else math.nan
        )
        if paired:
            row["noisy"] = row["flagged"] or row["ratio_spread"] > NOISY_CV
        else:
            row["noisy"] = row["flagged"] or any(cv > NOISY_CV for cv in cvs if not math.isnan(cv))
        out.append(row)
    out.sort(key=lambda r: (r["tier"], point_key(str(r["point"])), r["variant"], str(r["server"]), r["cores"]))
    return pd.DataFrame(out)


def mix_table(data: RunData) -> pd.DataFrame:
    """Per mix point: nominal upstream wait and the I/O fraction it makes of a sync request.

    I/O fraction = nominal wait / median latency of the ``sync`` variant at the lowest
    HTTP concurrency measured (1 in plans that include it), per interpreter.
    """
    df = data.values
    if df.empty:
        return pd.DataFrame()
    http = df[(df["tier"] == "http") & (df["variant"] == "sync") & (df["middleware"] == "default")]
    rows: list[dict[str, Any]] = []
    for point, group in http.groupby("point", sort=True):
        lowest = group["concurrency"].min()
        at_lowest = group[group["concurrency"] == lowest]
        row: dict[str, Any] = {
            "point": point,
            "nominal_wait_ms": at_lowest["nominal_wait_ms"].iloc[0],
            "concurrency": int(lowest),
        }
        for role, g in at_lowest.groupby("role"):
            p50 = g["p50_ms"].mean()
            row[f"{role}_sync_p50_ms"] = p50
            row[f"{role}_io_fraction"] = row["nominal_wait_ms"] / p50 if p50 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _paired(values: pd.DataFrame) -> bool:
    return bool("paired" in values.columns and not values.empty and (values["paired"] == 1).any())


def _conditions(values: pd.DataFrame) -> str:
    """The conditions every figure below was measured under, in one line."""
    if values.empty:
        return ""

    def seen(column: str, default: str = "-") -> str:
        if column not in values.columns:
            return default
        return ", ".join(sorted({str(v) for v in values[column].dropna()} - {"", "-", "nan"})) or default

    http = values[values["tier"] == "http"] if "tier" in values.columns else values
    clients = "httpx" + (
        " and aiohttp (mixes named -with-aiohttp)" if http["point"].str.contains("-with-aiohttp").any() else ""
    )
    closed = http[http["load_mode"] == "closed"] if "load_mode" in http.columns else http
    staggered = bool("stagger_ms" in closed.columns and (closed["stagger_ms"] > 0).any())
    start = (
        "closed-loop connections started spread over one nominal wait of their point (steady arrivals, as from "
        "independent clients)"
        if staggered
        else "closed-loop connections started together (--no-stagger, and every run before 2026-12-07): with a "
        "fixed wait the first waves reach the server in bursts that disperse only over tens of seconds, so "
        "margins at long waits depend on the warm-up"
    )
    return (
        f"Conditions: database {seen('database')} ({seen('db_pool', 'unpooled')} connections); HTTP client for "
        f"external calls {clients}; servers {seen('server_config')}; CPU layout {seen('cpu_layout')}; {start}."
    )


def _machine_noise(cells: dict[str, Any]) -> list[str]:
    """The machine's own noise before the run (lab.measure.noise), the floor under every spread."""
    noise = cells.get("machine_noise") or {}
    steady = noise.get("cpu_steadiness")
    if not steady:
        return []
    return [
        "",
        f"Machine before the run: load average {noise.get('loadavg', ['?'])[0]}; CPU speed varied "
        f"{steady['cv']:.1%} (CV of {steady['windows']} windows of {steady['window_s']:g} s of a fixed loop, "
        f"slowest {steady['slowest_over_median']:.0%} of the median) with nothing of the lab's running: "
        "per-round spreads below that are not to be had on this machine.",
    ]


# The CLI prints numbers the way the report does.
_fmt = sections.fmt


def markdown(
    data: RunData,
    table: pd.DataFrame,
    mixes: pd.DataFrame,
    crossings: pd.DataFrame,
    decided: Decisions,
    claims: pd.DataFrame | None = None,
    axes: dict[str, pd.DataFrame] | None = None,
    plots_made: dict[str, str] | None = None,
    found: list[Call] | None = None,
) -> str:
    """report.md: the answer in words first, then the evidence, then how it was measured.

    ``plots_made`` maps a plot's name to its path relative to the run directory; each is
    referenced next to the section it illustrates (and embedded in report.html). ``found``:
    the run's ``answer.calls`` when the caller has them already (``render`` does).
    """
    cells = data.cells
    plan = cells.get("plan", {})
    machine = cells.get("machine", {})
    shown = plots_made or {}
    lines = [
        f"# Lab report: {data.run_dir.name}",
        "",
        f"Plan `{plan.get('name', '?')}`, {plan.get('repeats', '?')} "
        + ("paired rounds" if _paired(data.values) else "interleaved HTTP repeats")
        + f"; machine {machine.get('cpu_model', '?')}, {machine.get('cpu_count', '?')} CPUs (affinity "
        f"{machine.get('cpu_affinity', '?')}); lab {machine.get('lab_version', '?')} ({machine.get('lab_commit', '?')}).",
        "",
        _conditions(data.values),
        *_machine_noise(cells),
    ]
    found = calls(data.values, decided) if found is None else found
    lines += answer_lines(data.values, decided, cells, claims, found=found)
    lines += sections.headline_lines(table, decided, {(c.point, c.role) for c in found if c.noisy})
    if "throughput" in shown:
        lines += [
            "",
            "## Throughput per mix point",
            "",
            "Closed loop at the largest core budget, each mix point at its highest concurrency, best server per "
            "variant: mean req/s ± 95% CI, 3.13 (blue) beside 3.13t (orange); hatched: too noisy to quote.",
            *sections.image("throughput", shown),
        ]
    lines += sections.decision_lines(decided, shown)
    lines += sections.middleware_lines(data.values)
    lines += noisy_lines(found, table)
    if "latency-percentiles" in shown:
        lines += [
            "",
            "## Latency percentiles",
            "",
            "HDR percentile curves per mix (row) and variant (column), both interpreters on each panel, at each "
            "variant's best measured server and concurrency, all rounds merged. The x axis is 1/(1 − percentile) on "
            "a log scale, so the tail gets room: p50, p90, p99, p99.9.",
            *sections.image("latency-percentiles", shown),
        ]
    if "throughput-vs-concurrency" in shown:
        lines += ["", "## Throughput against connections", *sections.image("throughput-vs-concurrency", shown)]
    if claims is not None and not claims.empty:
        lines += sections.claims_lines(claims)
    lines += advise_lines(data.values)
    lines += sections.summary_lines(table)
    # One frame of HTTP cell means for the three sections that read it.
    http_cells = sections.http_cells(data.values)
    lines += sections.limit_lines(http_cells)
    lines += sections.work_lines(http_cells)
    lines += sections.accounting_lines(http_cells, crossings)
    if axes:
        lines += sections.axes_lines(axes, decided.slo_ms)
    lines += sections.mixes_lines(mixes)
    lines += counter_overhead(data.run_dir, data)
    lines += sections.crossings_lines(crossings)
    lines += sections.setup_lines(cells, data.values, LOAD_SHARE_TARGET)
    bad = [c for c in cells.get("cells", []) if c["status"] != "ok"]
    if bad:
        lines += ["", f"## {len(bad)} cells not ok", ""]
        lines += [
            f"- {c['status'].upper()}: {c['bench_name']} on {c['interpreter']} (repeat {c['repeat']}): "
            f"{cell_reason(str(c['reason']))}"
            for c in bad
        ]
    return "\n".join(lines) + "\n"


# Runs measured before the load judge said so wrote this when no request completed inside
# the window (an error rate of 0 of 0); the report says what happened instead.
_ZERO_OF_ZERO = "0 of 0 requests failed"


def cell_reason(reason: str) -> str:
    """A failed cell's reason as the report prints it (older runs' "0 of 0 requests failed"
    reads "no request completed in the window", as newer runs record it)."""
    if not reason.startswith(_ZERO_OF_ZERO):
        return reason
    rest = reason.removeprefix(_ZERO_OF_ZERO).removeprefix(":").strip()
    return "no request completed in the window" + (f": {rest}" if rest not in ("", "-") else "")


def _to_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False)


def _plots(run_dir: Path, data: RunData, table: pd.DataFrame, decided: Decisions, found: list[Call]) -> dict[str, str]:
    """Draw every plot the run has data for; name -> path relative to the run directory."""
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    noisy = {(c.point, c.role) for c in found if c.noisy}
    made = {
        "throughput": plots.throughput_by_mix(table, out / "throughput.png"),
        "decision-map": plots.decision_heatmap(decided.by_throughput, out / "decision-map.png", noisy),
        "break-even": plots.break_even_curve(decided.ratios, out / "break-even.png"),
        "latency-percentiles": plots.latency_curves(
            data.values, decided.best, run_dir, out / "latency-percentiles.png"
        ),
        "throughput-vs-concurrency": plots.throughput_vs_concurrency(
            data.values, out / "throughput-vs-concurrency.png"
        ),
    }
    return {name: str(path.relative_to(run_dir)) for name, path in made.items() if path is not None}


def render(run_dir: Path, slo_ms: float = DEFAULT_SLO_MS) -> tuple[pd.DataFrame, str]:
    """Write report.md, report.html, plots/*.png and tables/*.csv for one run; return the
    summary table and the markdown."""
    data = load_run(run_dir)
    table = summary_table(data)
    mixes = mix_table(data)
    crossings = crossing_table(run_dir)
    decided = decide(data.values, slo_ms)
    claims = ledger(data.values, crossings, slo_ms, decided, crossing_runs=crossing_runs(run_dir))
    axes = {
        # By throughput whatever the latency (p95 is printed beside it), like the claims:
        # at 32+ connections most cells are past any SLO on a 2-core box.
        "ft_effect": tables.ft_effect_table(data.values, decided.best),
        "best_config": tables.best_config_table(data.values, decided.best),
        "saturation": tables.saturation_table(data.values, slo_ms),
        "open_loop": tables.open_loop_table(data.values),
        "axes": tables.axes_table(data.values),
    }
    found = calls(data.values, decided)  # once: the answer, the noisy list and the plots quote them
    made = _plots(run_dir, data, table, decided, found)
    text = markdown(data, table, mixes, crossings, decided, claims, axes, made, found)
    (run_dir / "tables").mkdir(exist_ok=True)
    for name, frame in axes.items():
        write_atomic(run_dir / "tables" / f"{name.replace('_', '-')}.csv", functools.partial(_to_csv, frame))
    write_atomic(run_dir / "tables" / "summary.csv", lambda p: table.to_csv(p, index=False))
    write_atomic(run_dir / "tables" / "mixes.csv", lambda p: mixes.to_csv(p, index=False))
    write_atomic(run_dir / "tables" / "crossings.csv", lambda p: crossings.to_csv(p, index=False))
    write_atomic(run_dir / "tables" / "claims.csv", lambda p: claims.to_csv(p, index=False))
    write_atomic(run_dir / "report.md", lambda p: p.write_text(text))
    manifest = {
        "format_version": FORMAT_VERSION,
        "run": run_dir.name,
        "machine": data.cells.get("machine", {}),
        "interpreters": data.cells.get("interpreters", {}),
        "plan": data.cells.get("plan", {}),
        "cells": {
            status: sum(1 for c in data.cells.get("cells", []) if c["status"] == status)
            for status in ("ok", "failed", "invalid", "skipped")
        },
    }
    write_atomic(run_dir / "manifest.json", lambda p: p.write_text(json.dumps(manifest, indent=2) + "\n"))
    page = html_page(f"Lab report: {run_dir.name}", text, run_dir)
    write_atomic(run_dir / "report.html", lambda p: p.write_text(page))
    return table, text
