from __future__ import annotations

import random
import statistics

import pytest

from lab.upstream import latency_of


def test_fixed_latency() -> None:
    assert latency_of(b"/?ms=20") == pytest.approx(0.020)
    assert latency_of(b"/") == 0


@pytest.mark.parametrize("target", [b"/?ms=-1", b"/?ms=abc", b"/?ms=20000", b"/?ms=5&dist=pareto"])
def test_malformed_targets_are_refused(target: bytes) -> None:
    assert latency_of(target) is None


def test_exponential_latency_has_the_requested_mean_and_a_cap() -> None:
    rng = random.Random(1)
    delays = [latency_of(b"/?ms=20&dist=exp", rng) for _ in range(20_000)]
    values = [d for d in delays if d is not None]
    assert len(values) == 20_000
    assert statistics.fmean(values) == pytest.approx(0.020, rel=0.05)
    assert max(values) <= 0.200
    assert statistics.pstdev(values) > 0.015  # a real tail, not a fixed delay
