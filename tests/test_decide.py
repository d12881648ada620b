from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from lab.decide import break_even, crossing_point, decision_map, sweep_ratios


def rows(
    point: str, role: str, variant: str, rps: list[float], p95: float = 10.0, conc: int = 8
) -> list[dict[str, Any]]:
    return [
        {"tier": "http", "status": "ok", "middleware": "default", "point": point, "role": role, "variant": variant,
         "concurrency": conc, "throughput_rps": r, "p95_ms": p95, "interpreter": f"cpython-3.13{'t' if role == 'ft' else ''}"}
        for r in rps
    ]  # fmt: skip


def test_crossing_point_interpolates() -> None:
    assert crossing_point([0, 10, 20], [0.5, 0.9, 1.3]) == pytest.approx(12.5)
    assert crossing_point([0, 10], [1.2, 1.5]) == 0
    assert math.isnan(crossing_point([0, 10, 20], [0.5, 0.6, 0.7]))


def test_winner_with_a_clear_margin_is_decided() -> None:
    df = pd.DataFrame(rows("billing", "gil", "sync", [100, 102, 98]) + rows("billing", "gil", "async", [150, 151, 149]))
    (row,) = decision_map(df, slo_ms=100).to_dict("records")
    assert row["winner"] == "async" and row["decided"]
    assert row["margin"] == pytest.approx(1.5)
    assert row["verdict"].startswith("async ×1.50 [")


def test_overlapping_intervals_are_not_called() -> None:
    df = pd.DataFrame(rows("cpu", "ft", "sync", [100, 130, 70]) + rows("cpu", "ft", "async", [101, 60, 140]))
    (row,) = decision_map(df, slo_ms=100).to_dict("records")
    assert not row["decided"]
    assert "not significant" in row["verdict"]


def test_slo_excludes_variants() -> None:
    df = pd.DataFrame(rows("io", "gil", "sync", [500, 500], p95=250) + rows("io", "gil", "async", [300, 300], p95=40))
    (row,) = decision_map(df, slo_ms=100).to_dict("records")
    assert row["winner"] == "async" and row["verdict"] == "async (only variant within SLO)"


def test_break_even_along_a_sweep() -> None:
    data: list[dict[str, Any]] = []
    # async/sync ratio 0.5 at 0 ms, 0.8 at 10 ms, 1.4 at 20 ms -> crosses 1 at 10 + 0.2/0.6*10 ms.
    for latency, ratio in ((0, 0.5), (10, 0.8), (20, 1.4)):
        point = f"io-sweep@latency={latency}"
        data += rows(point, "gil", "sync", [100.0, 100.0, 100.0]) + rows(point, "gil", "async", [100 * ratio] * 3)
    ratios = sweep_ratios(pd.DataFrame(data))
    assert ratios["value"].tolist() == [0, 10, 20]
    (row,) = break_even(ratios).to_dict("records")
    assert row["break_even"] == pytest.approx(10 + 10 * 0.2 / 0.6)
    assert row["role"] == "gil" and row["param"] == "latency"
