"""Crossing statistics: intervals over processes, differences, shares of request time."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lab.crossingstats import Endpoint, Sample, crossing_shares, difference, kind_counts, ratio, sample
from lab.stats import t95


def test_a_sample_is_over_process_means_when_runs_are_known() -> None:
    # Two processes: 10 values each around 100 and 110 µs; 20 values would give a far
    # narrower (and wrong) interval than the 2 process means do.
    runs = pd.DataFrame(
        [{"kind": "direct", "concurrency": 1, "role": "gil", "run": r, "us": 100.0 + 10 * r + d} for r in (0, 1) for d in (-1, 1) * 5]
    )  # fmt: skip
    s = sample(pd.DataFrame(), runs, "direct", 1, "gil")
    assert s is not None and s.runs == (100.0, 110.0) and s.basis == "over 2 processes"
    assert s.mean == pytest.approx(105.0)
    assert s.half == pytest.approx(t95(1) * math.sqrt(50.0) / math.sqrt(2))
    assert sample(pd.DataFrame(), runs, "direct", 1, "ft") is None


def test_without_runs_the_summary_row_is_used_and_said() -> None:
    crossings = pd.DataFrame([{"kind": "direct", "concurrency": 1, "gil_us": 20.0, "gil_ci": 2.0}])
    s = sample(crossings, None, "direct", 1, "gil")
    assert s == Sample(mean=20.0, half=2.0, runs=())
    assert s.basis == "over pyperf values, not processes"


def test_difference_and_ratio_without_process_means_combine_half_widths() -> None:
    a, b = Sample(mean=50.0, half=3.0, runs=()), Sample(mean=20.0, half=4.0, runs=())
    assert difference(a, b) == pytest.approx((30.0, 25.0, 35.0))
    r, low, high = ratio(a, b)
    assert r == pytest.approx(2.5) and low < 2.5 < high


def test_kind_counts_collects_caller_counts_by_prefix() -> None:
    crossings = pd.DataFrame({"kind": ["request-gather-ts-on-py", "direct"], "concurrency": [4, 1]})
    runs = pd.DataFrame({"kind": ["request-gather-ts-off-py"], "concurrency": [2]})
    assert kind_counts(crossings, runs, "request-gather-") == [2, 4]


def test_crossing_shares_cost_one_cold_and_the_rest_warm_largest_first() -> None:
    small = Endpoint(label="orm sync", crossings=1, per_request_ms=10.0, low_ms=9.0, high_ms=11.0, basis="server CPU")
    big = Endpoint(label="billing async", crossings=10, per_request_ms=2.0, low_ms=1.5, high_ms=2.5, basis="server CPU")
    shares = crossing_shares([small, big], cold=(300.0, 200.0, 400.0), warm=(50.0, 40.0, 60.0))
    assert [s.endpoint.label for s in shares] == ["billing async", "orm sync"]
    top = shares[0]
    # 300 + 9 × 50 = 750 µs of 2 ms; low: 560 µs of 2.5 ms; high: 940 µs of 1.5 ms.
    assert (top.share, top.low, top.high) == pytest.approx((0.375, 0.224, 0.94 / 1.5))
    assert shares[1].share == pytest.approx(0.03)
