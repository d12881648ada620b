"""Plots of a run (matplotlib, Agg): throughput per mix, break-even curve, decision heatmap.

Every plot labels its axes with units and marks the interpreter in the legend; each is
written as PNG under ``plots/`` and embedded in ``report.html``.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

ROLE_LABEL = {"gil": "CPython 3.13", "ft": "CPython 3.13t (free-threaded)"}
ROLE_COLOUR = {"gil": "#4C72B0", "ft": "#DD8452"}


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput_by_mix(table: pd.DataFrame, path: Path) -> Path | None:
    """HTTP tier, default middleware, highest concurrency: req/s ± CI per mix and variant."""
    http = table[(table["tier"] == "http") & (table["load"] == "closed")]
    if http.empty:
        return None
    http = http[http["cores"] == http["cores"].max()]
    top = http[http["concurrency"] == http["concurrency"].max()]
    labels = [f"{r['point']}\n{r['variant']}" for r in top.to_dict("records")]
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(labels)), 5))
    width = 0.4
    xs = range(len(labels))
    for offset, role in ((-width / 2, "gil"), (width / 2, "ft")):
        means = top[f"{role}_rps"].fillna(0).tolist()
        errors = top[f"{role}_ci"].fillna(0).tolist()
        ax.bar(
            [x + offset for x in xs],
            means,
            width,
            yerr=errors,
            capsize=2,
            label=ROLE_LABEL[role],
            color=ROLE_COLOUR[role],
        )
    ax.set_xticks(list(xs), labels, rotation=90, fontsize=7)
    ax.set_ylabel("throughput (requests/s, mean ± 95% CI)")
    ax.set_title(f"HTTP tier at concurrency {int(top['concurrency'].max())}")
    ax.legend()
    return _save(fig, path)


def break_even_curve(ratios: pd.DataFrame, path: Path) -> Path | None:
    if ratios.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for role, g in ratios.groupby("role"):
        g = g.sort_values("value")
        ax.plot(
            g["value"],
            g["ratio"],
            marker="o",
            label=ROLE_LABEL.get(str(role), str(role)),
            color=ROLE_COLOUR.get(str(role)),
        )
        if not g["low"].isna().all():
            ax.fill_between(g["value"], g["low"], g["high"], alpha=0.2, color=ROLE_COLOUR.get(str(role)))
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    param = str(ratios["param"].iloc[0])
    ax.set_xlabel(f"upstream {param} (ms)")
    ax.set_ylabel("async / sync throughput (ratio, 95% interval)")
    ax.set_title(f"Break-even along {ratios['mix'].iloc[0]}: above 1, async serves more")
    ax.legend()
    return _save(fig, path)


def decision_heatmap(decisions: pd.DataFrame, path: Path) -> Path | None:
    if decisions.empty:
        return None
    points = sorted(decisions["point"].unique())
    roles = [r for r in ("gil", "ft") if r in set(decisions["role"])]
    variants = sorted(decisions["winner"].unique())
    colour_of = {v: i for i, v in enumerate(variants)}
    grid = [[math.nan] * len(roles) for _ in points]
    text = [[""] * len(roles) for _ in points]
    for r in decisions.to_dict("records"):
        i, j = points.index(r["point"]), roles.index(r["role"])
        grid[i][j] = colour_of[r["winner"]]
        margin = "" if math.isnan(r["margin"]) else f" ×{r['margin']:.2f}"
        text[i][j] = f"{r['winner']}{margin}" + ("" if r["decided"] else " (tie)")
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(points) + 1.5))
    ax.imshow(grid, cmap="tab10", vmin=0, vmax=9, aspect="auto")
    for i in range(len(points)):
        for j in range(len(roles)):
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(roles)), [ROLE_LABEL[r] for r in roles])
    ax.set_yticks(range(len(points)), points)
    ax.set_title("Winning variant per mix (highest req/s; 'tie' when not significant)")
    return _save(fig, path)


def _closed_http(values: pd.DataFrame) -> pd.DataFrame:
    if values.empty:
        return values
    ok = values[(values["tier"] == "http") & (values["status"] == "ok") & (values["middleware"] == "default")]
    return ok[ok["load_mode"] == "closed"]


def throughput_vs_concurrency(values: pd.DataFrame, path: Path) -> Path | None:
    """One panel per mix point: mean req/s against connections, a line per variant, server
    and interpreter (only when some curve has more than one concurrency level)."""
    http = _closed_http(values)
    if http.empty or http.groupby(["point", "variant", "server_spec", "cores"])["concurrency"].nunique().max() < 2:
        return None
    http = http[http["cores"] == http["cores"].max()]
    points = sorted(http["point"].unique())
    cols = min(3, len(points))
    rows = math.ceil(len(points) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, point in zip(axes.flat, points, strict=False):
        g = http[http["point"] == point]
        for (variant, server, role), c in g.groupby(["variant", "server_spec", "role"]):
            curve = c.groupby("concurrency")["throughput_rps"].mean().sort_index()
            style = "-" if role == "ft" else "--"
            ax.plot(curve.index, curve.values, style, marker="o", ms=3, label=f"{variant} {server} {ROLE_LABEL[role]}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("connections (closed loop)")
        ax.set_ylabel("throughput (requests/s)")
        ax.set_title(point, fontsize=9)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(points) :]:
        ax.axis("off")
    return _save(fig, path)


def latency_percentiles(values: pd.DataFrame, path: Path) -> Path | None:
    """p50 / p95 / p99 / p99.9 per mix, variant and interpreter at the highest closed-loop
    concurrency (log scale, ms)."""
    http = _closed_http(values)
    if http.empty:
        return None
    http = http[(http["cores"] == http["cores"].max()) & (http["concurrency"] == http["concurrency"].max())]
    groups = list(http.groupby(["point", "variant", "server_spec", "role"], sort=True))
    percentiles = (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99"), ("p999_ms", "p99.9"))
    fig, ax = plt.subplots(figsize=(max(8, 0.5 * len(groups)), 5))
    width = 0.2
    for i, (column, name) in enumerate(percentiles):
        xs = [x + (i - 1.5) * width for x in range(len(groups))]
        ys = [g[column].mean() for _key, g in groups]
        colours = [ROLE_COLOUR[key[3]] for key, _g in groups]
        ax.bar(xs, ys, width, color=colours, alpha=0.35 + 0.2 * i, label=name)
    labels = [f"{k[0]}\n{k[1]} {k[2]}\n{'3.13t' if k[3] == 'ft' else '3.13'}" for k, _g in groups]
    ax.set_xticks(list(range(len(groups))), labels, rotation=90, fontsize=6)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms, log scale)")
    conc = int(http["concurrency"].max())
    ax.set_title(f"latency percentiles at {conc} connections (bars left to right: p50, p95, p99, p99.9)")
    handles = [Patch(color=ROLE_COLOUR[r]) for r in ("gil", "ft")]
    ax.legend(handles, [ROLE_LABEL["gil"], ROLE_LABEL["ft"]], fontsize=7)
    return _save(fig, path)
