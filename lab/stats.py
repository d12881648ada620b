"""Statistics shared by the reporter and the decision: means, intervals, ratios."""

from __future__ import annotations

import math
import statistics

import numpy as np

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

# "Too noisy": per-round 3.13t/3.13 ratios (or an unpaired side's repeats) that spread by
# more than this (sd of the logs, about a CV) are re-measured once by ``lab.measure.http``,
# then kept out of verdicts by the reporter. Why 10%: it is the drift this VM shows between
# two runs minutes apart (../shared/FACTS.md). Pairing cancels drift a round shares, so rounds
# that still disagree by more than the drift itself cannot separate the effects the lab
# decides on (a few to tens of percent). One constant, so measurement and report agree.
NOISY_CV = 0.10


def t95(df: int) -> float:
    return _T95[df - 1] if 1 <= df <= len(_T95) else 1.96


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of its 95% confidence interval (nan with one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def paired_ratio_ci(num: list[float], den: list[float]) -> tuple[float, float, float]:
    """Geometric mean of per-round ratios with a 95% t-interval on their logs.

    For values measured in pairs (round i of ``num`` beside round i of ``den``): the
    drift a round shares cancels in its ratio, and the interval comes from how much the
    per-round ratios disagree, which is what a second run would see too.
    """
    logs = [math.log(a / b) for a, b in zip(num, den, strict=True) if a > 0 and b > 0]
    if not logs:
        return math.nan, math.nan, math.nan
    centre = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(centre), math.nan, math.nan
    half = t95(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(centre), math.exp(centre - half), math.exp(centre + half)


def ratio_ci(num: list[float], den: list[float], *, paired: bool | None = None) -> tuple[float, float, float]:
    """Ratio with a 95% interval: paired (``paired_ratio_ci``) when the two lists are
    rounds measured side by side (the default when they have the same length), else the
    ratio of means with a percentile-bootstrap interval (deterministic seed)."""
    if paired is None:
        paired = len(num) == len(den) and len(num) >= 2
    if paired:
        return paired_ratio_ci(num, den)
    ratio = statistics.fmean(num) / statistics.fmean(den)
    if len(num) < 2 or len(den) < 2:
        return ratio, math.nan, math.nan
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    a, b = np.asarray(num), np.asarray(den)
    ra = rng.choice(a, size=(BOOTSTRAP_SAMPLES, a.size)).mean(axis=1)
    rb = rng.choice(b, size=(BOOTSTRAP_SAMPLES, b.size)).mean(axis=1)
    low, high = np.percentile(ra / rb, [2.5, 97.5])
    return ratio, float(low), float(high)


def log_ratio_spread(num: list[float], den: list[float]) -> float:
    """Standard deviation of the per-round log ratios (≈ the CV of the ratio): how much
    paired rounds disagree about num/den. nan with fewer than two usable rounds."""
    logs = [math.log(a / b) for a, b in zip(num, den, strict=False) if a > 0 and b > 0]
    return statistics.stdev(logs) if len(logs) >= 2 else math.nan
