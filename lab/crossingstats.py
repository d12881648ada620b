"""Crossing statistics for the claims ledger: what one sync↔async crossing costs and how
much of a request's time the crossings take, each with a 95% interval.

Inputs are the frames ``lab.report`` builds: ``crossing_table`` (``kind``, ``concurrency``,
``{role}_us``, ``{role}_ci`` over all pyperf values) and, when available, ``crossing_runs``
(``kind``, ``concurrency``, ``role``, ``run``, ``us``: one row per value, ``run`` naming the
worker process). Values inside one pyperf worker share its warm-up, allocator and
scheduling, so they are not independent draws: with ``crossing_runs`` every interval here is
over per-process means; without it, over values, and ``Sample.basis`` says so.

Hands on numbers only (``Sample``, differences and ratios with their intervals, ``Endpoint``
time per request, ``Share`` of it); ``lab.claims`` turns them into verdicts (C1, C2).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from lab.decide import http_ok
from lab.stats import t95

Interval = tuple[float, float, float]  # (estimate, low, high)


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One crossing kind at one caller count on one interpreter (µs)."""

    mean: float
    half: float  # 95% half-width; nan when unknown
    runs: tuple[float, ...]  # per-process means; empty when only the summary is known

    @property
    def basis(self) -> str:
        return f"over {len(self.runs)} processes" if self.runs else "over pyperf values, not processes"


def sample(crossings: pd.DataFrame, runs: pd.DataFrame | None, kind: str, concurrency: int, role: str) -> Sample | None:
    """``kind`` at ``concurrency`` callers on ``role``: over processes from ``runs`` when it has
    the kind, else the summary row of ``crossings``; None when neither measured it."""
    if runs is not None and not runs.empty:
        mine = runs[(runs["kind"] == kind) & (runs["concurrency"] == concurrency) & (runs["role"] == role)]
        if not mine.empty:
            # Average within each process first: only process means are independent draws.
            means = tuple(float(v) for v in mine.groupby("run")["us"].mean())
            mean = statistics.fmean(means)
            half = math.nan
            if len(means) > 1:
                half = t95(len(means) - 1) * statistics.stdev(means) / math.sqrt(len(means))
            return Sample(mean=mean, half=half, runs=means)
    if crossings.empty or f"{role}_us" not in crossings:
        return None
    row = crossings[(crossings["kind"] == kind) & (crossings["concurrency"] == concurrency)]
    if row.empty or pd.isna(row.iloc[0][f"{role}_us"]):
        return None
    return Sample(mean=float(row.iloc[0][f"{role}_us"]), half=float(row.iloc[0][f"{role}_ci"]), runs=())


def difference(a: Sample, b: Sample) -> Interval:
    """a - b with a 95% interval: Welch's t over process means (the two kinds ran in
    different processes, so nothing pairs them), else the two half-widths combined."""
    diff = a.mean - b.mean
    if len(a.runs) > 1 and len(b.runs) > 1:
        va, vb = statistics.variance(a.runs) / len(a.runs), statistics.variance(b.runs) / len(b.runs)
        se = math.sqrt(va + vb)
        if se == 0:
            return diff, diff, diff
        dof = (va + vb) ** 2 / (va**2 / (len(a.runs) - 1) + vb**2 / (len(b.runs) - 1))
        half = t95(max(1, math.floor(dof))) * se
    else:
        half = math.hypot(a.half, b.half)
    return diff, diff - half, diff + half


def ratio(a: Sample, b: Sample) -> Interval:
    """a / b with a 95% interval: Welch's t on the log of the ratio of process means (delta
    method; separate benchmarks, so no pairing), else from the two half-widths."""
    estimate = a.mean / b.mean
    if len(a.runs) > 1 and len(b.runs) > 1:
        va = statistics.variance(a.runs) / len(a.runs) / a.mean**2
        vb = statistics.variance(b.runs) / len(b.runs) / b.mean**2
        if va + vb == 0:
            return estimate, estimate, estimate
        dof = (va + vb) ** 2 / (va**2 / (len(a.runs) - 1) + vb**2 / (len(b.runs) - 1))
        rel = t95(max(1, math.floor(dof))) * math.sqrt(va + vb)
    else:
        rel = math.hypot(a.half / a.mean, b.half / b.mean)
    return estimate, estimate * math.exp(-rel), estimate * math.exp(rel)


def kind_counts(crossings: pd.DataFrame, runs: pd.DataFrame | None, prefix: str) -> list[int]:
    """The caller counts measured for kinds starting with ``prefix``, ascending."""
    frames = [f for f in (crossings, runs) if f is not None and not f.empty and "kind" in f]
    return sorted({int(c) for f in frames for c in f[f["kind"].astype(str).str.startswith(prefix)]["concurrency"]})


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """An HTTP endpoint (point and variant) with crossings, and its time per request."""

    label: str  # "billing bridged"
    crossings: int
    per_request_ms: float  # server CPU (or p50) per request, mean over repeats
    low_ms: float
    high_ms: float
    basis: str  # "server CPU" or "p50 latency"


def _count_column(df: pd.DataFrame) -> str | None:
    return next((c for c in ("crossings_total", "crossings") if c in df.columns), None)


def _best_rows(df: pd.DataFrame, best: pd.DataFrame, role: str) -> Iterable[tuple[str, str, pd.DataFrame]]:
    """Per point and variant on one interpreter: the tidy rows of its best shape (all its
    valid closed-loop rows when no best shape is known)."""
    ok = http_ok(df)
    if ok.empty:
        return
    ok = ok[ok["role"] == role]
    for (point, variant), g in ok.groupby(["point", "variant"]):
        chosen = g
        if not best.empty:
            b = best[(best["point"] == point) & (best["role"] == role) & (best["variant"] == variant)]
            if not b.empty and "server_spec" in g.columns:
                at = g[(g["server_spec"] == b.iloc[0]["server"]) & (g["concurrency"] == b.iloc[0]["concurrency"])]
                chosen = at if not at.empty else g
        yield str(point), str(variant), chosen


def endpoints(df: pd.DataFrame, best: pd.DataFrame, role: str) -> list[Endpoint]:
    """Endpoints (point and variant) with at least one crossing per request, and their time
    per request at their best shape: server CPU where recorded, else p50 latency."""
    column = _count_column(df)
    if df.empty or column is None:
        return []
    out = []
    for point, variant, rows in _best_rows(df, best, role):
        count = int(rows[column].max())
        if count <= 0:
            continue
        basis, values = "server CPU", []
        if "server_cpu_ms_per_req" in rows.columns:
            values = [float(v) for v in rows["server_cpu_ms_per_req"] if v > 0 and math.isfinite(v)]
        if not values and "p50_ms" in rows.columns:
            basis, values = "p50 latency", [float(v) for v in rows["p50_ms"] if v > 0 and math.isfinite(v)]
        if not values:
            continue
        mean = statistics.fmean(values)
        half = t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
        out.append(
            Endpoint(
                label=f"{point} {variant}",
                crossings=count,
                per_request_ms=mean,
                low_ms=max(mean - half, 1e-9),
                high_ms=mean + half,
                basis=basis,
            )
        )
    return out


@dataclass(frozen=True, kw_only=True)
class Share:
    """The share of an endpoint's time per request its crossings cost, with a 95% interval."""

    share: float
    low: float
    high: float
    endpoint: Endpoint


def crossing_shares(found: list[Endpoint], cold: Interval, warm: Interval) -> list[Share]:
    """Each endpoint's crossing cost over its time per request, largest share first.

    ``cold`` and ``warm``: µs per crossing (estimate, low, high). A request's first crossing
    starts its context's thread (cold); the rest reuse it (warm). The interval pairs the low
    cost with the high time per request and the other way round, so it covers both."""
    shares = []
    for e in found:
        cost_us = [cold[i] + (e.crossings - 1) * warm[i] for i in range(3)]
        shares.append(
            Share(
                share=cost_us[0] / 1000 / e.per_request_ms,
                low=cost_us[1] / 1000 / e.high_ms,
                high=cost_us[2] / 1000 / e.low_ms,
                endpoint=e,
            )
        )
    return sorted(shares, key=lambda s: s.share, reverse=True)
