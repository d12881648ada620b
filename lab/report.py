"""Report stage: turn a run's raw pyperf JSON and cells.json into tables.

Reads only the files ``lab.measure`` writes (the JSON is the contract; this module never
imports the measurement code), so ``lab report`` can re-render any earlier run.
Writes ``report.md`` and ``tables/summary.csv`` beside the raw data.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyperf

from lab import FORMAT_VERSION
from lab.errors import LabError

# Two-sided 95% Student-t critical values by degrees of freedom (1..30); 1.96 beyond.
_T95 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 20261130


def t95(df: int) -> float:
    return _T95[df - 1] if 1 <= df <= len(_T95) else 1.96


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of its 95% confidence interval (nan with one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def ratio_ci(num: list[float], den: list[float]) -> tuple[float, float, float]:
    """Ratio of means with a percentile-bootstrap 95% interval (deterministic seed)."""
    ratio = statistics.fmean(num) / statistics.fmean(den)
    if len(num) < 2 or len(den) < 2:
        return ratio, math.nan, math.nan
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    a, b = np.asarray(num), np.asarray(den)
    ra = rng.choice(a, size=(BOOTSTRAP_SAMPLES, a.size)).mean(axis=1)
    rb = rng.choice(b, size=(BOOTSTRAP_SAMPLES, b.size)).mean(axis=1)
    low, high = np.percentile(ra / rb, [2.5, 97.5])
    return ratio, float(low), float(high)


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
    rows: list[dict[str, Any]] = []
    for path in sorted((run_dir / "raw").glob("*.json")):
        suite = pyperf.BenchmarkSuite.load(str(path))
        for bench in suite:
            for run in bench.get_runs():
                md = run.get_metadata()
                for value in run.values:
                    rows.append(
                        {
                            "interpreter": md["lab_interpreter"],
                            "role": md["lab_role"],
                            "build_profile": md.get("lab_build_profile", "?"),
                            "tier": md["lab_tier"],
                            "mix": md.get("lab_mix", "?"),
                            "point": md.get("lab_point", md.get("lab_workload", "?")),
                            "crossings": int(md.get("crossings_total", md.get("crossings_sync_to_async", -1))),
                            "middleware": md.get("lab_middleware", "default"),
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
                            "server_config": _server_label(md),
                        }
                    )
    return RunData(run_dir=run_dir, cells=cells, values=pd.DataFrame(rows))


def _server_label(md: dict[str, Any]) -> str:
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
    keys = ["tier", "point", "middleware", "variant", "concurrency"]
    out: list[dict[str, Any]] = []
    for key, group in df.groupby(keys, sort=True):
        tier, point, middleware, variant, conc = key
        by_role = {role: g for role, g in group.groupby("role")}
        row: dict[str, Any] = {
            "tier": tier,
            "point": point if middleware == "default" else f"{point} +{middleware}",
            "variant": variant,
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
                        f"{role}_p95_ms": math.nan,
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
                    f"{role}_p95_ms": g["p95_ms"].mean(),
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
        out.append(row)
    return pd.DataFrame(out)


def _fmt(value: float, digits: int = 0) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def markdown(data: RunData, table: pd.DataFrame) -> str:
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
    lines += [
        "",
        "Throughput is requests per second (mean ± 95% CI over repeats or pyperf values); p95 in ms (HTTP tier only); "
        "ratio is 3.13t / 3.13 throughput with a bootstrap 95% interval. Cells whose GIL came back on are invalid and "
        "excluded from ratios.",
        "",
        "| tier | mix | variant | conc | server | crossings per request | 3.13 req/s | 3.13 p95 | 3.13t req/s | 3.13t p95 | 3.13t/3.13 | status |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
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
        lines.append(
            f"| {r['tier']} | {r['point']} | {r['variant']} | {r['concurrency']} | {r.get('gil_server', r.get('ft_server', ''))} | "
            f"{r['crossings'] if r['crossings'] >= 0 else '—'} | "
            f"{_fmt(r['gil_rps'])} ± {_fmt(r['gil_ci'])} | {_fmt(r['gil_p95_ms'], 2)} | "
            f"{_fmt(r['ft_rps'])} ± {_fmt(r['ft_ci'])} | {_fmt(r['ft_p95_ms'], 2)} | {ratio} | "
            f"{r['gil_status']} / {r['ft_status']} |"
        )
    bad = [c for c in cells.get("cells", []) if c["status"] != "ok"]
    if bad:
        lines += ["", f"## {len(bad)} cells not ok", ""]
        lines += [
            f"- {c['status'].upper()}: {c['bench_name']} on {c['interpreter']} (repeat {c['repeat']}): {c['reason']}"
            for c in bad
        ]
    return "\n".join(lines) + "\n"


def render(run_dir: Path) -> tuple[pd.DataFrame, str]:
    """Write report.md and tables/summary.csv for one run; return the table and markdown."""
    data = load_run(run_dir)
    table = summary_table(data)
    text = markdown(data, table)
    (run_dir / "tables").mkdir(exist_ok=True)
    tmp = run_dir / "tables" / ".summary.csv.tmp"
    table.to_csv(tmp, index=False)
    tmp.rename(run_dir / "tables" / "summary.csv")
    tmp_md = run_dir / ".report.md.tmp"
    tmp_md.write_text(text)
    tmp_md.rename(run_dir / "report.md")
    return table, text
