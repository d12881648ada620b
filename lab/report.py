"""Report stage: turn a run's raw pyperf JSON and cells.json into tables.

Reads only the files ``lab.measure`` writes (the JSON is the contract; this module never
imports the measurement code), so ``lab report`` can re-render any earlier run.
Writes ``report.md`` and ``tables/summary.csv`` beside the raw data.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyperf

from lab import FORMAT_VERSION, plots, tables
from lab.claims import ledger
from lab.decide import DEFAULT_SLO_MS, Decisions, decide, interval_text
from lab.errors import LabError
from lab.files import write_atomic
from lab.stats import mean_ci, ratio_ci

# The load generator should cost at most this fraction of the server's CPU.
LOAD_SHARE_TARGET = 0.10
# Coefficient of variation over repeats above which a cell is flagged too noisy to decide.
NOISY_CV = 0.10


@dataclass(frozen=True)
class RunData:
    run_dir: Path
    cells: dict[str, Any]
    values: pd.DataFrame  # one row per pyperf value


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
                            "rss_peak_mib": float(md.get("server_rss_peak_mib", math.nan)),
                            "rss_mean_mib": float(md.get("server_rss_mean_mib", math.nan)),
                            # Paired runs: the round a value belongs to (ratios pair by it) and
                            # whether the cell's rounds stayed too noisy after a re-measure.
                            "repeat": int(md.get("lab_repeat", -1)),
                            "noisy": int(md.get("lab_noisy", 0)),
                        }
                    )
    return RunData(run_dir=run_dir, cells=cells, values=pd.DataFrame(rows))


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
                    f"{role}_p99_ms": g["p99_ms"].mean(),
                    f"{role}_cpu_ms": g["server_cpu_ms_per_req"].mean(),
                    f"{role}_rss_mib": g["rss_peak_mib"].mean(),
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
        # Too noisy to decide: a side whose repeats scatter more than NOISY_CV.
        row["noisy"] = any(cv > NOISY_CV for cv in cvs if not math.isnan(cv))
        out.append(row)
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


def _side_by_side(gil: Any, ft: Any) -> str:
    """One server label, or both when the interpreters ran different stacks (best-available)."""
    labels = [x for x in (gil, ft) if isinstance(x, str)]
    if len(set(labels)) == 2:
        return f"3.13: {labels[0]}; 3.13t: {labels[1]} (stacks differ)"
    return labels[0] if labels else "—"


def _who(role: str) -> str:
    return "3.13t" if role == "ft" else "3.13"


def _fmt(value: float, digits: int = 0) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def decision_lines(decided: Decisions) -> list[str]:
    lines: list[str] = []
    maps = (
        (math.inf, "by throughput", decided.by_throughput),
        (decided.slo_ms, f"within a p95 SLO of {decided.slo_ms:g} ms", decided.within_slo),
    )
    for slo, title, decisions in maps:
        lines += [
            "",
            f"## Decision map {title} (default middleware)",
            "",
            "Per mix and interpreter: the variant with the highest throughput"
            + ("" if math.isinf(slo) else " among those meeting the SLO")
            + ", each at its best measured concurrency, with its margin over the runner-up (bootstrap 95% interval). "
            "A winner is called only when the interval excludes 1.",
            "",
        ]
        if decisions.empty:
            lines.append("No variant met the SLO in any mix at the concurrency measured (see p95 above).")
            continue
        lines += ["| mix | 3.13 | 3.13t |", "|---|---|---|"]
        for point, g in decisions.groupby("point", sort=True):
            by_role = {r["role"]: r["verdict"] for r in g.to_dict("records")}
            lines.append(f"| {point} | {by_role.get('gil', '—')} | {by_role.get('ft', '—')} |")
    ratios, even = decided.ratios, decided.even
    if not even.empty:
        lines += ["", "## Break-even: where async starts to out-serve sync", ""]
        for r in even.to_dict("records"):
            who = _who(r["role"])
            if math.isnan(r["break_even"]):
                lines.append(
                    f"- {r['mix']} on {who}: async never out-serves sync up to {r['param']}={r['max_value']:g} ms."
                )
            else:
                lines.append(
                    f"- {r['mix']} on {who}: async ≥ sync from {r['param']} ≈ {r['break_even']:.1f} ms "
                    f"(interval {interval_text(r)} ms)."
                )
        lines += ["", "| mix | param | value | 3.13 async/sync | 3.13t async/sync |", "|---|---|---:|---:|---:|"]
        for (mix, param, value), g in ratios.groupby(["mix", "param", "value"], sort=True):
            cells = {}
            for r in g.to_dict("records"):
                interval = "" if math.isnan(r["low"]) else f" [{r['low']:.2f}, {r['high']:.2f}]"
                cells[r["role"]] = f"{r['ratio']:.2f}{interval}"
            lines.append(f"| {mix} | {param} | {value} | {cells.get('gil', '—')} | {cells.get('ft', '—')} |")
    return lines


def headline_lines(table: pd.DataFrame, decided: Decisions) -> list[str]:
    """The few numbers a reader quotes, each with its interval and conditions."""
    lines = ["", "## Headline", ""]
    http = table[table["tier"] == "http"] if not table.empty else table
    for variant in ("sync", "async"):
        rows = http[(http["variant"] == variant) & http["ft_over_gil"].notna()] if not http.empty else http
        if rows.empty:
            continue
        ordered = rows.sort_values("ft_over_gil").to_dict("records")
        worst, best = ordered[0], ordered[-1]
        lines.append(
            f"- `{variant}` over HTTP, 3.13t / 3.13 throughput: median {rows['ft_over_gil'].median():.2f} across "
            f"{len(rows)} mixes; best {best['ft_over_gil']:.2f} [{best['ratio_low']:.2f}, {best['ratio_high']:.2f}] "
            f"({best['point']}), worst {worst['ft_over_gil']:.2f} [{worst['ratio_low']:.2f}, {worst['ratio_high']:.2f}] "
            f"({worst['point']})."
        )
    decisions = decided.by_throughput
    if not decisions.empty:
        for role, name in (("gil", "3.13"), ("ft", "3.13t")):
            mine = decisions[decisions["role"] == role]
            if mine.empty:
                continue
            won = mine[mine["decided"]]
            counts = won["winner"].value_counts().to_dict()
            summary = ", ".join(f"{v} in {n}" for v, n in sorted(counts.items())) or "none"
            lines.append(
                f"- Decided winners by throughput on {name}: {summary} of {len(mine)} mixes; "
                f"{len(mine) - len(won)} too close to call."
            )
    even = decided.even
    for r in even.to_dict("records") if not even.empty else []:
        who = _who(r["role"])
        where = (
            f"from {r['param']} ≈ {r['break_even']:.1f} ms (interval {interval_text(r)})"
            if not math.isnan(r["break_even"])
            else f"nowhere up to {r['max_value']:g} ms"
        )
        lines.append(f"- Break-even on {who} along {r['mix']}: async out-serves sync {where}.")
    return lines if len(lines) > 3 else []


def _interval(ratio: float, low: float, high: float) -> str:
    if math.isnan(ratio):
        return "—"
    return f"{ratio:.2f}" + ("" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]")


def axes_lines(axes: dict[str, pd.DataFrame], slo_ms: float) -> list[str]:
    """Sections for the free-threading effect, best configuration, saturation, open loop
    and the core and memory axes (each only when the run measured that axis)."""
    lines: list[str] = []
    effect = axes["ft_effect"]
    if not effect.empty:
        lines += [
            "",
            "## Free-threading effect: one thread and best configuration",
            "",
            "3.13t / 3.13 throughput (bootstrap 95% interval). One thread: the handler tier at concurrency 1 "
            "(in-process, no server). Best: each interpreter at its own highest-throughput server shape and "
            "concurrency over HTTP (closed loop, default middleware, largest core budget).",
            "",
            "| mix | variant | one thread | best config | 3.13 best | 3.13t best |",
            "|---|---|---:|---:|---|---|",
        ]
        for r in effect.to_dict("records"):
            lines.append(
                f"| {r['point']} | {r['variant']} | {_interval(r.get('one_thread', math.nan), r.get('one_low', math.nan), r.get('one_high', math.nan))} | "
                f"{_interval(r.get('best', math.nan), r.get('best_low', math.nan), r.get('best_high', math.nan))} | "
                f"{r.get('gil_best', '—') if isinstance(r.get('gil_best'), str) else '—'} | "
                f"{r.get('ft_best', '—') if isinstance(r.get('ft_best'), str) else '—'} |"
            )
    best = axes["best_config"]
    if not best.empty and best["configs_tried"].max() > 1:
        lines += [
            "",
            "## Best configuration found (P x T search)",
            "",
            "Per mix, variant and interpreter: the server shape and concurrency with the highest throughput, out of "
            "the configurations tried (closed loop, default middleware, largest core budget), with its p95.",
            "",
            "| mix | variant | interpreter | best server @ connections | req/s | p95 ms | configs tried |",
            "|---|---|---|---|---:|---:|---:|",
        ]
        for r in best.to_dict("records"):
            lines.append(
                f"| {r['point']} | {r['variant']} | {_who(r['role'])} | {r['best_server']} @{r['concurrency']} | "
                f"{_fmt(r['rps'])} ± {_fmt(r['ci'])} | {_fmt(r['p95_ms'], 1)} | {r['configs_tried']} |"
            )
    sat = axes["saturation"]
    if not sat.empty:
        lines += [
            "",
            "## Saturation per concurrency curve",
            "",
            f"The lowest concurrency whose throughput is within 5% of the curve's maximum, or the last one before "
            f"p95 went over {slo_ms:g} ms.",
            "",
            "| mix | variant | server | cores | interpreter | levels | saturates at | req/s there | p95 ms there | why |",
            "|---|---|---|---:|---|---|---:|---:|---:|---|",
        ]
        for r in sat.to_dict("records"):
            lines.append(
                f"| {r['point']} | {r['variant']} | {r['server_spec']} | {r['cores']} | {_who(r['role'])} | {r['levels']} | "
                f"{r['saturation_concurrency']} | {_fmt(r['saturation_rps'])} | {_fmt(r['saturation_p95_ms'], 1)} | {r['reason']} |"
            )
    open_loop = axes["open_loop"]
    if not open_loop.empty:
        lines += [
            "",
            "## Open loop: latency at a fixed offered rate",
            "",
            "Requests due at fixed intervals; latency from each request's due time (no coordinated omission). The "
            "rate is a fraction of the saturation throughput of `sync` on 3.13 (its best server), the same for every "
            "variant and both interpreters.",
            "",
            "| mix | variant | server | cores | fraction | interpreter | offered req/s | served req/s | p50 | p95 | p99 | p99.9 ms |",
            "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in open_loop.to_dict("records"):
            lines.append(
                f"| {r['point']} | {r['variant']} | {r['server_spec']} | {r['cores']} | {r['rate_fraction']:g} | "
                f"{_who(r['role'])} | {_fmt(r['offered_rps'])} | {_fmt(r['served_rps'])} | {_fmt(r['p50_ms'], 1)} | "
                f"{_fmt(r['p95_ms'], 1)} | {_fmt(r['p99_ms'], 1)} | {_fmt(r['p999_ms'], 1)} |"
            )
    ax = axes["axes"]
    if not ax.empty:
        lines += [
            "",
            "## Core and memory axes",
            "",
            "Closed loop, default middleware, each configuration at its best concurrency: throughput per core budget "
            "and per GiB of mean server RSS (the whole process tree). Several processes buy parallelism on 3.13 with "
            "memory; one threaded process on 3.13t shares it. Best by memory efficiency per mix and interpreter:",
            "",
        ]
        for (cores, point, role), g in ax.dropna(subset=["rps_per_gib"]).groupby(["cores", "point", "role"]):
            top = g.sort_values("rps_per_gib").iloc[-1]
            lines.append(
                f"- {point} on {_who(str(role))} at {cores} core{'' if cores == 1 else 's'}: {top['variant']} on {top['server']} "
                f"({top['rps_per_gib']:,.0f} req/s per GiB; {top['rps']:,.0f} req/s in {top['rss_mean_mib']:.0f} MiB)."
            )
        lines += [
            "",
            "| cores | mix | variant | server | interpreter | conc | req/s | RSS MiB | req/s per GiB |",
            "|---:|---|---|---|---|---:|---:|---:|---:|",
        ]
        for r in ax.to_dict("records"):
            lines.append(
                f"| {r['cores']} | {r['point']} | {r['variant']} | {r['server']} | {_who(r['role'])} | {r['concurrency']} | "
                f"{_fmt(r['rps'])} ± {_fmt(r['ci'])} | {_fmt(r['rss_mean_mib'])} | {_fmt(r['rps_per_gib'])} |"
            )
    return lines


def claims_lines(claims: pd.DataFrame) -> list[str]:
    lines = [
        "",
        "## Claims ledger",
        "",
        "Each claim of the article with its verdict on each interpreter and the numbers behind it (95% intervals; "
        "a difference is called only when its interval excludes 'no difference').",
        "",
        "| claim | 3.13 | 3.13t |",
        "|---|---|---|",
    ]
    for r in claims.to_dict("records"):
        gil = f"**{r['gil_verdict']}**: {r['gil_evidence']}" if r["gil_evidence"] else r["gil_verdict"]
        lines.append(f"| {r['claim']} {r['text']} | {gil} | **{r['ft_verdict']}**: {r['ft_evidence']} |")
    return lines


def markdown(
    data: RunData,
    table: pd.DataFrame,
    mixes: pd.DataFrame,
    crossings: pd.DataFrame,
    decided: Decisions,
    claims: pd.DataFrame | None = None,
    axes: dict[str, pd.DataFrame] | None = None,
) -> str:
    cells = data.cells
    interps = cells.get("interpreters", {})
    plan = cells.get("plan", {})
    machine = cells.get("machine", {})
    lines = [
        f"# Lab report: {data.run_dir.name}",
        "",
        f"Plan `{plan.get('name')}`, {plan.get('repeats')} interleaved HTTP repeats, "
        f"{plan.get('handler_processes')} pyperf processes per handler cell. Machine: {machine.get('cpu_model')}, "
        f"{machine.get('cpu_count')} CPUs (affinity {machine.get('cpu_affinity')}); lab {machine.get('lab_version')} "
        f"({machine.get('lab_commit')}).",
        "",
    ]
    for name, info in interps.items():
        lines.append(
            f"- `{name}`: Python {info['version']}, profile `{info['build_profile']}`, "
            f"flags `{' '.join(info['configure_flags']) or '(none)'}`, Py_GIL_DISABLED={int(info['py_gil_disabled'])}, "
            f"Django {info['packages'].get('django')}, gunicorn {info['packages'].get('gunicorn')}, "
            f"uvicorn {info['packages'].get('uvicorn')}"
        )
    http = data.values[data.values["tier"] == "http"] if not data.values.empty else data.values
    if not http.empty:
        share = http["load_cpu_share"]
        over = http[share > LOAD_SHARE_TARGET]
        lines += [
            "",
            f"Load generator CPU / server CPU over the HTTP cells: median {share.median():.2f}, max {share.max():.2f} "
            f"(target ≤ {LOAD_SHARE_TARGET:.2f}; {len(over)} of {len(http)} cell repeats above it). CPU layouts: "
            + "; ".join(
                f"{layout} ({n} cell repeats, load generator share median {g.median():.2f})"
                for layout, g in share.groupby(http["cpu_layout"])
                for n in [len(g)]
            )
            + ".",
        ]
        upstream = http["upstream_cpu_share"].dropna()
        upstream = upstream[upstream > 0]
        if not upstream.empty:
            lines += [
                "",
                f"Upstream simulator CPU / server CPU over the cells that call it: median {upstream.median():.2f}, "
                f"max {upstream.max():.2f}.",
            ]
    lines += [
        "",
        "Throughput is requests per second (mean ± 95% CI over repeats or pyperf values); p95 in ms (HTTP tier only); "
        "ratio is 3.13t / 3.13 throughput with a bootstrap 95% interval. Cells whose GIL came back on are invalid and "
        "excluded from ratios.",
        "",
        f"CPU is server CPU ms per request; RSS is the server tree's peak MiB. ⚠ marks a cell whose repeats vary by "
        f"more than {NOISY_CV:.0%} (CV) on either side: too noisy to decide on its own.",
        "",
        "| tier | mix | variant | server | cores | load | conc | crossings per request | 3.13 req/s | 3.13 p50 / p95 / p99 | "
        "3.13 CPU · RSS | 3.13t req/s | 3.13t p50 / p95 / p99 | 3.13t CPU · RSS | 3.13t/3.13 | status |",
        "|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in table.to_dict("records"):
        ratio = (
            "—"
            if math.isnan(r["ft_over_gil"])
            else (
                f"{r['ft_over_gil']:.2f}"
                + ("" if math.isnan(r["ratio_low"]) else f" [{r['ratio_low']:.2f}, {r['ratio_high']:.2f}]")
            )
        )
        server = _side_by_side(r.get("gil_server"), r.get("ft_server"))
        load = r["load"] + (f" ({r['rate_rps']:,.0f}/s)" if r["rate_rps"] else "")
        sides = []
        for role in ("gil", "ft"):
            sides.append(
                f"{_fmt(r[f'{role}_rps'])} ± {_fmt(r[f'{role}_ci'])} | {_fmt(r[f'{role}_p50_ms'], 1)} / "
                f"{_fmt(r[f'{role}_p95_ms'], 1)} / "
                f"{_fmt(r[f'{role}_p99_ms'], 1)} | {_fmt(r[f'{role}_cpu_ms'], 2)} · {_fmt(r[f'{role}_rss_mib'])}"
            )
        lines.append(
            f"| {r['tier']} | {r['point']} | {r['variant']} | {server} | {r['cores'] or '—'} | "
            f"{load} | "
            f"{r['concurrency']} | {r['crossings'] if r['crossings'] >= 0 else '—'} | {sides[0]} | {sides[1]} | "
            f"{ratio}{' ⚠' if r['noisy'] else ''} | {r['gil_status']} / {r['ft_status']} |"
        )
    lines += headline_lines(table, decided)
    lines += decision_lines(decided)
    if axes:
        lines += axes_lines(axes, decided.slo_ms)
    if claims is not None and not claims.empty:
        lines += claims_lines(claims)
    if not mixes.empty:
        lines += [
            "",
            "## I/O fraction per mix",
            "",
            "Nominal upstream wait per request / median latency of the `sync` variant at the lowest HTTP concurrency "
            "measured.",
            "",
            "| mix | nominal wait ms | at concurrency | 3.13 sync p50 ms | 3.13 I/O fraction | 3.13t sync p50 ms | 3.13t I/O fraction |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in mixes.to_dict("records"):
            lines.append(
                f"| {r['point']} | {r['nominal_wait_ms']:.0f} | {r['concurrency']} | {_fmt(r.get('gil_sync_p50_ms', math.nan), 2)} | "
                f"{_fmt(r.get('gil_io_fraction', math.nan), 2)} | {_fmt(r.get('ft_sync_p50_ms', math.nan), 2)} | "
                f"{_fmt(r.get('ft_io_fraction', math.nan), 2)} |"
            )
    lines += counter_overhead(data.run_dir, data)
    if not crossings.empty:
        lines += [
            "",
            "## Crossing costs",
            "",
            "Wall time per sync↔async crossing (µs, mean ± 95% CI over pyperf values) with C concurrent callers; "
            "each call does the same pure-Python work (tens of µs). `client/*` rows: one HTTP call to the upstream "
            "simulator at 0 ms (client + loopback + a trivial responder), for each client the views use. "
            "Lower is better.",
            "",
            "| kind | callers | 3.13 µs | 3.13t µs | 3.13t/3.13 |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in crossings.to_dict("records"):
            lines.append(
                f"| {r['kind']} | {r['concurrency']} | {_fmt(r.get('gil_us', math.nan), 1)} ± {_fmt(r.get('gil_ci', math.nan), 1)} | "
                f"{_fmt(r.get('ft_us', math.nan), 1)} ± {_fmt(r.get('ft_ci', math.nan), 1)} | {_fmt(r.get('ft_over_gil', math.nan), 2)} |"
            )
    bad = [c for c in cells.get("cells", []) if c["status"] != "ok"]
    if bad:
        lines += ["", f"## {len(bad)} cells not ok", ""]
        lines += [
            f"- {c['status'].upper()}: {c['bench_name']} on {c['interpreter']} (repeat {c['repeat']}): {c['reason']}"
            for c in bad
        ]
    return "\n".join(lines) + "\n"


def html_page(title: str, intro: str, plots: list[Path], tables: dict[str, pd.DataFrame]) -> str:
    """A self-contained HTML report: plots embedded as base64 PNG, tables from pandas."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;"
        "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}</style>",
        f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>",
    ]
    for plot in plots:
        data = base64.b64encode(plot.read_bytes()).decode("ascii")
        parts.append(
            f"<h2>{html.escape(plot.stem)}</h2><img alt='{html.escape(plot.stem)}' src='data:image/png;base64,{data}'>"
        )
    for name, frame in tables.items():
        if not frame.empty:
            parts.append(
                f"<h2>{html.escape(name)}</h2>" + frame.to_html(index=False, float_format=lambda v: f"{v:,.3g}")
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def _to_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False)


def render(run_dir: Path, slo_ms: float = DEFAULT_SLO_MS) -> tuple[pd.DataFrame, str]:
    """Write report.md and tables/*.csv for one run; return the summary table and markdown."""
    data = load_run(run_dir)
    table = summary_table(data)
    mixes = mix_table(data)
    crossings = crossing_table(run_dir)
    decided = decide(data.values, slo_ms)
    claims = ledger(data.values, crossings, slo_ms, decided)
    axes = {
        # By throughput whatever the latency (p95 is printed beside it), like the claims:
        # at 32+ connections most cells are past any SLO on a 2-core box.
        "ft_effect": tables.ft_effect_table(data.values, decided.best),
        "best_config": tables.best_config_table(data.values, decided.best),
        "saturation": tables.saturation_table(data.values, slo_ms),
        "open_loop": tables.open_loop_table(data.values),
        "axes": tables.axes_table(data.values),
    }
    text = markdown(data, table, mixes, crossings, decided, claims, axes)
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
    decisions, ratios = decided.by_throughput, decided.ratios
    (run_dir / "plots").mkdir(exist_ok=True)
    made = [
        plots.throughput_by_mix(table, run_dir / "plots" / "throughput.png") if not table.empty else None,
        plots.break_even_curve(ratios, run_dir / "plots" / "break-even.png"),
        plots.decision_heatmap(decisions, run_dir / "plots" / "decision-map.png"),
        plots.throughput_vs_concurrency(data.values, run_dir / "plots" / "throughput-vs-concurrency.png"),
        plots.latency_percentiles(data.values, run_dir / "plots" / "latency-percentiles.png"),
    ]
    page = html_page(
        f"Lab report: {run_dir.name}",
        text.split("\n\n", 2)[1] if text.count("\n\n") >= 2 else "",
        [p for p in made if p is not None],
        {
            "claims ledger": claims,
            "summary": table,
            "decision map": decisions,
            "break-even ratios": ratios,
            "mixes": mixes,
            "crossing costs": crossings,
            "free-threading effect": axes["ft_effect"],
            "best configuration": axes["best_config"],
            "saturation": axes["saturation"],
            "open loop": axes["open_loop"],
            "core and memory axes": axes["axes"],
        },
    )
    write_atomic(run_dir / "report.html", lambda p: p.write_text(page))
    return table, text
