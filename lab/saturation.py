"""Saturation of a closed-loop concurrency curve, used by measure (open-loop rates) and report.

The saturation point of a curve (throughput and p95 per concurrency level) is the
lowest concurrency whose throughput is within ``within`` (5%) of the curve's maximum,
unless p95 crosses the SLO first: then it is the last level before p95 went over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

WITHIN = 0.05


@dataclass(frozen=True)
class Saturation:
    concurrency: int
    throughput_rps: float
    p95_ms: float
    reason: str


def saturation(curve: Mapping[int, tuple[float, float]], slo_ms: float, within: float = WITHIN) -> Saturation | None:
    """``curve``: concurrency -> (mean throughput, mean p95 ms). None for an empty curve."""
    if not curve:
        return None
    levels = sorted(curve)
    best = max(rps for rps, _p95 in curve.values())
    knee = next(c for c in levels if curve[c][0] >= (1 - within) * best)
    over = next((c for c in levels if curve[c][1] > slo_ms), None)
    if over is not None and over <= knee:
        before = [c for c in levels if c < over]
        if not before:
            rps, p95 = curve[over]
            return Saturation(over, rps, p95, f"p95 over the {slo_ms:g} ms SLO already at {over} connections")
        chosen = before[-1]
        rps, p95 = curve[chosen]
        return Saturation(chosen, rps, p95, f"p95 over the {slo_ms:g} ms SLO from {over} connections")
    rps, p95 = curve[knee]
    return Saturation(knee, rps, p95, f"throughput within {within:.0%} of the curve's maximum ({best:,.0f} req/s)")
