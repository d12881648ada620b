"""Plots of a run (matplotlib, Agg), each written as PNG under ``plots/`` and embedded in
``report.html`` at page width (about 1300 px), so each is drawn to be read at that size:

- ``throughput_by_mix``: small multiples, one panel per mix point, a pair of bars (3.13,
  3.13t) per variant; hatched bars are too noisy to quote.
- ``latency_curves``: HDR percentile curves from ``raw/histograms/*.hdr``, one panel per mix
  point (row) and variant (column), both interpreters on each panel, x = 1/(1 - p) on a log
  scale (the usual HdrHistogram plot: p50, p90, p99, p99.9 evenly spaced).
- ``decision_heatmap``: the winning variant per mix point and interpreter; a tie is grey and
  written "a ≈ b", never in a winner's colour.
- ``break_even_curve`` and ``throughput_vs_concurrency``.

Mix points are in numeric order everywhere (``latency=100`` after ``latency=20``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from lab.tables import point_key

ROLE_LABEL = {"gil": "CPython 3.13", "ft": "CPython 3.13t (free-threaded)"}
ROLE_COLOUR = {"gil": "#4C72B0", "ft": "#DD8452"}
VARIANT_ORDER = ("sync", "async", "bridged", "sync-on-asgi", "async-db")
VARIANT_COLOUR = {
    "sync": "#55A868",
    "async": "#C44E52",
    "bridged": "#8172B2",
    "sync-on-asgi": "#CCB974",
    "async-db": "#64B5CD",
}
TIE_COLOUR = "#D9D9D9"
DPI = 100
PAGE_WIDTH_IN = 13.0  # ~1300 px at DPI: the report page's width
# Percentile axis ticks: 1/(1 - p) for p = 0, 50, 90, 99, 99.9, 99.99 %.
PERCENTILE_TICKS = ((1, "0%"), (2, "50%"), (10, "90%"), (100, "99%"), (1000, "99.9%"), (10000, "99.99%"))


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _variants(present: set[str]) -> list[str]:
    return [v for v in VARIANT_ORDER if v in present] + sorted(present - set(VARIANT_ORDER))


def _grid(n: int, cols: int, panel_h: float, **kw: Any) -> tuple[Figure, list[Any]]:
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(PAGE_WIDTH_IN, panel_h * rows + 0.8), squeeze=False, layout="constrained", **kw
    )
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat


def throughput_by_mix(table: pd.DataFrame, path: Path) -> Path | None:
    """Closed-loop HTTP cells at the largest core budget and each point's highest concurrency:
    req/s ± 95% CI per variant, 3.13 beside 3.13t, one small panel per mix point."""
    if table.empty:
        return None
    http = table[(table["tier"] == "http") & (table["load"] == "closed")]
    if http.empty:
        return None
    http = http[http["cores"] == http["cores"].max()]
    points = sorted(http["point"].unique(), key=lambda p: point_key(str(p)))
    fig, axes = _grid(len(points), 4, 2.5)
    width = 0.38
    for ax, point in zip(axes, points, strict=False):
        g = http[http["point"] == point]
        g = g[g["concurrency"] == g["concurrency"].max()]
        variants = _variants(set(g["variant"]))
        for offset, role in ((-width / 2, "gil"), (width / 2, "ft")):
            for x, variant in enumerate(variants):
                rows = g[g["variant"] == variant]
                if rows.empty or rows[f"{role}_rps"].isna().all():
                    continue
                top = rows.loc[rows[f"{role}_rps"].idxmax()]  # best server when several were tried
                ax.bar(
                    x + offset,
                    top[f"{role}_rps"],
                    width,
                    yerr=0 if math.isnan(top[f"{role}_ci"]) else top[f"{role}_ci"],
                    capsize=2,
                    color=ROLE_COLOUR[role],
                    hatch="///" if top["noisy"] else None,
                    edgecolor="white" if top["noisy"] else None,
                )
        ax.set_xticks(range(len(variants)), variants, fontsize=8)
        ax.set_title(f"{point} ({int(g['concurrency'].max())} conn.)", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylabel("req/s", fontsize=8)
    handles = [Patch(color=ROLE_COLOUR[r], label=ROLE_LABEL[r]) for r in ("gil", "ft")]
    handles.append(Patch(facecolor="#999999", hatch="///", edgecolor="white", label="too noisy to quote"))
    fig.legend(handles=handles, loc="outside upper center", ncols=3, fontsize=9)
    return _save(fig, path)


def decision_cell(r: dict[Any, Any]) -> tuple[str, str]:
    """Colour and text of one decision: the winner's colour only when decided; a tie is
    grey and names both sides ("sync ≈ async ×1.05")."""
    margin = "" if math.isnan(r["margin"]) else f" ×{r['margin']:.2f}"
    if r["decided"]:
        return VARIANT_COLOUR.get(str(r["winner"]), "#999999"), f"{r['winner']}{margin}"
    # The verdict says "a ≈ b (×m [lo, hi], not significant)": keep "a ≈ b".
    verdict = str(r["verdict"])
    pair = verdict.split(" (")[0] if "≈" in verdict else f"{r['winner']} (only one)"
    return TIE_COLOUR, f"{pair}{margin}"


def decision_heatmap(
    decisions: pd.DataFrame, path: Path, noisy: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset()
) -> Path | None:
    """The winner per mix point and interpreter in its variant's colour; ties grey with "≈"."""
    if decisions.empty:
        return None
    points = sorted(decisions["point"].unique(), key=lambda p: point_key(str(p)))
    roles = [r for r in ("gil", "ft") if r in set(decisions["role"])]
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(points) + 2.0), layout="constrained")
    ax.set_xlim(-0.5, len(roles) - 0.5)
    ax.set_ylim(len(points) - 0.5, -0.5)
    used: set[str] = set()
    tie = False
    for r in decisions.to_dict("records"):
        i, j = points.index(r["point"]), roles.index(r["role"])
        colour, label = decision_cell(r)
        if r["decided"]:
            used.add(str(r["winner"]))
        else:
            tie = True
        if (str(r["point"]), str(r["role"])) in noisy:
            label += " ⚠"
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=colour, edgecolor="white", linewidth=2))
        ax.text(j, i, label, ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(roles)), [ROLE_LABEL[r] for r in roles])
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(points)), points, fontsize=9)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    handles = [Patch(color=VARIANT_COLOUR.get(v, "#999999"), label=f"{v} wins (decided)") for v in _variants(used)]
    if tie:
        handles.append(Patch(color=TIE_COLOUR, label="tie: interval includes 1"))
    if noisy:
        handles.append(Patch(color="white", label="⚠ too noisy to quote"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize=8)
    fig.suptitle("Winning variant per mix point, by throughput (margin over the runner-up)", fontsize=11)
    return _save(fig, path)


def break_even_curve(ratios: pd.DataFrame, path: Path) -> Path | None:
    """async / sync throughput along each swept mix, per interpreter, with its 95% band."""
    if ratios.empty:
        return None
    mixes = sorted(ratios["mix"].unique())
    fig, axes = _grid(len(mixes), 2, 4.0)
    if len(mixes) == 1:
        fig.set_size_inches(8, 4.5)
    for ax, mix in zip(axes, mixes, strict=False):
        m = ratios[ratios["mix"] == mix]
        for role, g in m.groupby("role"):
            g = g.sort_values("value")
            colour = ROLE_COLOUR.get(str(role))
            ax.plot(g["value"], g["ratio"], marker="o", label=ROLE_LABEL.get(str(role), str(role)), color=colour)
            if not g["low"].isna().all():
                ax.fill_between(g["value"], g["low"], g["high"], alpha=0.2, color=colour)
        ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel(f"upstream {m['param'].iloc[0]} (ms)")
        ax.set_ylabel("async / sync req/s (95% interval)")
        ax.set_title(f"{mix}: above 1, async serves more", fontsize=10)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _closed_http(values: pd.DataFrame) -> pd.DataFrame:
    if values.empty:
        return values
    ok = values[(values["tier"] == "http") & (values["status"] == "ok") & (values["middleware"] == "default")]
    ok = ok[ok["load_mode"] == "closed"]
    return ok[ok["cores"] == ok["cores"].max()] if not ok.empty else ok


def throughput_vs_concurrency(values: pd.DataFrame, path: Path) -> Path | None:
    """One panel per mix point: mean req/s against connections, a line per variant, server
    and interpreter (only when some curve has more than one concurrency level)."""
    http = _closed_http(values)
    if http.empty or http.groupby(["point", "variant", "server_spec"])["concurrency"].nunique().max() < 2:
        return None
    points = sorted(http["point"].unique(), key=lambda p: point_key(str(p)))
    fig, axes = _grid(len(points), 3, 3.2)
    for ax, point in zip(axes, points, strict=False):
        g = http[http["point"] == point]
        for (variant, server, role), c in g.groupby(["variant", "server_spec", "role"]):
            curve = c.groupby("concurrency")["throughput_rps"].mean().sort_index()
            ax.plot(
                curve.index,
                curve.values,
                "-" if role == "ft" else "--",
                marker="o",
                ms=3,
                color=VARIANT_COLOUR.get(str(variant)),
                label=f"{variant} {server} {'3.13t' if role == 'ft' else '3.13'}",
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("connections (closed loop)", fontsize=8)
        ax.set_ylabel("req/s", fontsize=8)
        ax.set_title(point, fontsize=9)
        ax.legend(fontsize=6)
    return _save(fig, path)


def _histogram(run_dir: Path, row: dict[Any, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """One round's HDR histogram as (values in µs, counts): the file the metadata names,
    else the lab's layout. Values are each bucket's highest equivalent value, as hdrh's
    ``get_value_at_percentile`` reports them; reading the counts array directly is ~100x
    faster than hdrh's pure-Python iterators, which matters at hundreds of files per run."""
    name = str(row.get("histogram_file") or "")
    if not name:
        bench = str(row.get("bench_name") or "")
        if not bench:
            return None
        name = f"raw/histograms/{row['interpreter']}/{bench.replace('/', '-')}-r{int(row['repeat'])}.hdr"
    path = run_dir / name
    if not path.is_file():
        return None
    text = path.read_text().strip()
    if not text:
        return None
    try:
        hist = HdrHistogram.decode(text)
        counts = np.ctypeslib.as_array(hist.counts)[: hist.counts_len]
    except Exception:  # a damaged or foreign file: that round has no curve, the rest still draw
        return None
    used = np.nonzero(counts)[0]
    values = [hist.get_highest_equivalent_value(hist.get_value_from_index(int(i))) for i in used]
    return np.asarray(values, dtype=float), counts[used].astype(float)


def value_at(values: np.ndarray, counts: np.ndarray, percentiles: np.ndarray) -> np.ndarray:
    """HdrHistogram's value at each percentile (0-100) of a merged (values, counts) histogram."""
    order = np.argsort(values)
    values, cumulative = values[order], np.cumsum(counts[order])
    wanted = np.maximum(1, np.ceil(percentiles / 100.0 * cumulative[-1]))
    found: np.ndarray = values[np.minimum(np.searchsorted(cumulative, wanted), len(values) - 1)]
    return found


def _curve(run_dir: Path, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """x = 1/(1 - p) and latency in ms for all rounds of a cell merged; ``True`` when from
    histograms, ``False`` when only the recorded p50/p95/p99/p99.9 were available."""
    rounds = [h for h in (_histogram(run_dir, row) for row in rows.to_dict("records")) if h is not None]
    if rounds:
        values = np.concatenate([r[0] for r in rounds])
        counts = np.concatenate([r[1] for r in rounds])
        # Up to the percentile the sample count supports: beyond 1 - 1/n there is only the max.
        top = max(2.0, min(float(counts.sum()), 1e5))
        xs = np.logspace(0, math.log10(top), 160)
        return xs, value_at(values, counts, 100.0 * (1 - 1 / xs)) / 1000.0, True
    points = [(2.0, "p50_ms"), (20.0, "p95_ms"), (100.0, "p99_ms"), (1000.0, "p999_ms")]
    known = [(x, float(rows[col].mean())) for x, col in points if col in rows and not rows[col].isna().all()]
    if not known:
        return None
    return np.array([k[0] for k in known]), np.array([k[1] for k in known]), False


def latency_curves(values: pd.DataFrame, best: pd.DataFrame, run_dir: Path, path: Path) -> Path | None:
    """HDR percentile curves: a row per mix point, a column per variant, both interpreters on
    each panel, each at the server and concurrency the decision used for it (``best``)."""
    http = _closed_http(values)
    if http.empty or best.empty:
        return None
    points = sorted(best["point"].unique(), key=lambda p: point_key(str(p)))
    variants = _variants(set(best["variant"]))
    fig, axes = plt.subplots(
        len(points),
        len(variants),
        figsize=(PAGE_WIDTH_IN, 1.9 * len(points) + 1.0),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    drawn = False
    right = 1000.0
    for i, point in enumerate(points):
        for j, variant in enumerate(variants):
            ax = axes[i][j]
            shapes: dict[str, str] = {}
            for r in best[(best["point"] == point) & (best["variant"] == variant)].to_dict("records"):
                rows = http[
                    (http["point"] == point)
                    & (http["variant"] == variant)
                    & (http["role"] == r["role"])
                    & (http["concurrency"] == r["concurrency"])
                ]
                if "server_spec" in rows.columns:
                    rows = rows[rows["server_spec"] == r["server"]]
                curve = _curve(run_dir, rows)
                if curve is None:
                    continue
                xs, ys, from_hist = curve
                right = max(right, float(xs[-1]))
                ax.plot(xs, ys, "-" if from_hist else "--o", ms=3, color=ROLE_COLOUR[str(r["role"])])
                shapes[str(r["role"])] = f"{r['server']} @{r['concurrency']}"
                drawn = True
            ax.set_xscale("log")
            ax.set_ylim(bottom=0)
            ax.tick_params(labelsize=7)
            ax.grid(True, which="major", alpha=0.3)
            if not ax.lines:
                ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes, color="grey")
            # The shape each curve was measured on, once when both interpreters share it.
            shape = (
                next(iter(shapes.values()))
                if len(set(shapes.values())) == 1
                else " · ".join(f"{'3.13t' if k == 'ft' else '3.13'}: {v}" for k, v in sorted(shapes.items()))
            )
            ax.set_title(
                f"{variant}" + (f" · {shape}" if shape else ""), fontsize=8, fontweight="bold" if i == 0 else None
            )
            if j == 0:
                ax.set_ylabel(f"{point}\nlatency ms", fontsize=8)
    if not drawn:
        plt.close(fig)
        return None
    ticks = [(x, label) for x, label in PERCENTILE_TICKS if x <= right * 1.01]
    for ax in axes.flat:
        ax.set_xlim(1, right)
        ax.set_xticks([t[0] for t in ticks], [t[1] for t in ticks])
        ax.minorticks_off()
        ax.tick_params(labelbottom=True)  # every panel keeps its percentile labels
    for ax in axes[-1]:
        ax.set_xlabel("percentile", fontsize=8)
    handles = [Line2D([], [], color=ROLE_COLOUR[r], label=ROLE_LABEL[r]) for r in ("gil", "ft")]
    handles.append(
        Line2D([], [], color="grey", linestyle="--", marker="o", ms=3, label="only p50/p95/p99/p99.9 recorded")
    )
    fig.legend(handles=handles, loc="outside upper center", ncols=3, fontsize=9)
    return _save(fig, path)
