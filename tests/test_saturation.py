from __future__ import annotations

from lab.saturation import saturation


def test_knee_is_the_first_level_within_five_percent_of_the_maximum() -> None:
    curve = {1: (50.0, 5.0), 2: (90.0, 6.0), 4: (96.0, 9.0), 8: (100.0, 20.0), 16: (99.0, 40.0)}
    sat = saturation(curve, slo_ms=100)
    assert sat is not None
    assert (sat.concurrency, sat.throughput_rps) == (4, 96.0)
    assert "within 5%" in sat.reason


def test_slo_stops_the_curve_before_the_knee() -> None:
    curve = {1: (50.0, 5.0), 2: (80.0, 60.0), 4: (100.0, 150.0)}
    sat = saturation(curve, slo_ms=100)
    assert sat is not None
    assert sat.concurrency == 2
    assert "p95 over the 100 ms SLO from 4 connections" in sat.reason


def test_over_the_slo_everywhere_and_empty_curves() -> None:
    sat = saturation({4: (10.0, 500.0), 8: (11.0, 900.0)}, slo_ms=100)
    assert sat is not None and sat.concurrency == 4 and "already at 4" in sat.reason
    assert saturation({}, slo_ms=100) is None
