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
    # Paired rounds: the geometric mean of 150/100, 151/102 and 149/98.
    assert row["margin"] == pytest.approx(math.exp((math.log(1.5) + math.log(151 / 102) + math.log(149 / 98)) / 3))
    assert row["verdict"].startswith("async ×1.50 [")


def test_overlapping_intervals_are_not_called() -> None:
    df = pd.DataFrame(rows("cpu", "ft", "sync", [100, 130, 70]) + rows("cpu", "ft", "async", [101, 60, 140]))
    (row,) = decision_map(df, slo_ms=100).to_dict("records")
    assert not row["decided"]
    assert "not significant" in row["verdict"]


def test_slo_excludes_variants() -> None:
    df = pd.DataFrame(rows("io", "gil", "sync", [500, 500], p95=250) + rows("io", "gil", "async", [300, 300], p95=40))
    (row,) = decision_map(df, slo_ms=100).to_dict("records")
    assert row["winner"] == "async" and row["verdict"] == "async; no runner-up" and row["runner_up"] == ""


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


def test_paired_interval_comes_from_the_per_round_ratios() -> None:
    from lab.stats import paired_ratio_ci, t95

    # Per-round ratios 2.0, 2.2, 1.8 although the rounds themselves drift by 2x.
    ratio, low, high = paired_ratio_ci([200.0, 440.0, 90.0], [100.0, 200.0, 50.0])
    logs = [math.log(2.0), math.log(2.2), math.log(1.8)]
    mean = sum(logs) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / 2)
    half = t95(2) * sd / math.sqrt(3)
    assert ratio == pytest.approx(math.exp(mean))
    assert low == pytest.approx(math.exp(mean - half))
    assert high == pytest.approx(math.exp(mean + half))
    # Unpaired, the same values drown in the drift between rounds.
    _r, ulow, uhigh = ratio_ci_unpaired([200.0, 440.0, 90.0], [100.0, 200.0, 50.0])
    assert uhigh - ulow > high - low


def ratio_ci_unpaired(num: list[float], den: list[float]) -> tuple[float, float, float]:
    from lab.stats import ratio_ci

    return ratio_ci(num, den, paired=False)


def test_best_against_best_and_the_fixed_shape_as_sensitivity() -> None:
    from lab.decide import decide

    def shaped(point: str, variant: str, server: str, rps: list[float]) -> list[dict[str, Any]]:
        out = rows(point, "gil", variant, rps, conc=32)
        for i, r in enumerate(out):
            r.update(server_spec=server, repeat=i)
        return out

    data = (
        shaped("io", "sync", "gunicorn-gthread:1x8", [76.0, 75.0, 77.0])
        + shaped("io", "sync", "gunicorn-gthread:1x32", [299.0, 301.0, 300.0])
        + shaped("io", "async", "uvicorn:1", [110.0, 112.0, 111.0])
    )
    decided = decide(pd.DataFrame(data))
    (row,) = decided.by_throughput.to_dict("records")
    assert row["winner"] == "sync" and row["server"] == "gunicorn-gthread:1x32" and row["decided"]
    (fixed,) = decided.fixed.to_dict("records")
    assert fixed["winner"] == "async" and fixed["decided"]
    assert "gunicorn-gthread:1x8 c32: 76.0" in str(decided.best.set_index("variant").loc["sync", "tried"])


def test_a_cell_noisy_across_interpreters_still_competes_on_its_own_interpreter() -> None:
    # "noisy" flags the 3.13t / 3.13 ratio; the sync/async margin here is steady (×1.5 each round).
    data = rows("cpu", "gil", "sync", [100, 120, 80]) + rows("cpu", "gil", "async", [150, 180, 120])
    for r in data:
        r["noisy"] = int(r["variant"] == "async")
    (row,) = decision_map(pd.DataFrame(data), slo_ms=100).to_dict("records")
    assert row["winner"] == "async" and row["runner_up"] == "sync" and row["decided"]


def test_sweep_values_carry_their_unit() -> None:
    from lab.decide import axis_unit

    assert axis_unit("latency") == " ms" and axis_unit("k") == ""


def test_the_fixed_shape_section_needs_both_fixed_shapes() -> None:
    from lab.decide import decide
    from lab.sections import sensitivity_lines

    def shaped(variant: str, server: str, rps: list[float]) -> list[dict[str, Any]]:
        out = rows("orm", "gil", variant, rps, conc=32)
        for i, r in enumerate(out):
            r.update(server_spec=server, repeat=i)
        return out

    asgi_only = shaped("async", "uvicorn:1", [50.0, 51.0, 49.0]) + shaped("bridged", "uvicorn:1", [40.0, 41.0, 39.0])
    with_sync = asgi_only + shaped("sync", "gunicorn-gthread:2x16", [90.0, 91.0, 89.0])
    # No gthread 1x8 cell: the section says so instead of comparing two ASGI variants.
    assert sensitivity_lines(decide(pd.DataFrame(with_sync)))[-1] == (
        "Not measured: this run has no gunicorn-gthread:1x8 cells."
    )
    both = with_sync + shaped("sync", "gunicorn-gthread:1x8", [60.0, 61.0, 59.0])
    text = "\n".join(sensitivity_lines(decide(pd.DataFrame(both))))
    assert "## Sensitivity: the fixed shape (gunicorn-gthread:1x8 vs uvicorn:1)" in text
    assert "sync ×1.20" in text
