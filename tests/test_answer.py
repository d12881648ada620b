"""The answer's wording: decided, tied and lone variants are each said as what they are."""

from __future__ import annotations

import math

from lab.answer import Call, role_summary

NAN = math.nan


def call(point: str, winner: str, runner_up: str = "", margin: float = NAN, decided: bool = False) -> Call:
    low, high = (margin * 0.9, margin * 1.1) if runner_up else (NAN, NAN)
    return Call(
        point=point, role="gil", winner=winner, runner_up=runner_up, margin=margin, low=low, high=high,
        decided=decided, noisy="",
    )  # fmt: skip


def test_a_variant_measured_alone_is_neither_bold_nor_a_tie() -> None:
    assert role_summary([call("cpu-heavy", "sync")]) == "sync (the only variant measured)"
    text = role_summary([call("io-fanout-k@k=1", "sync"), call("io-fanout-k@k=16", "async")])
    assert text == "only one variant measured in each mix: io-fanout-k@k=1 (sync), io-fanout-k@k=16 (async)"
    assert "tie" not in text and "**" not in text


def test_ties_and_lone_variants_are_said_apart() -> None:
    tie = call("io-sweep@latency=100", "async", "sync", 1.0)
    text = role_summary([tie, call("io-sweep@latency=5", "async")])
    assert text == (
        "a tie wherever two or more variants were measured: io-sweep@latency=100: async ≈ sync (×1.00 [0.90, 1.10], "
        "a tie); only one variant measured in io-sweep@latency=5 (async)"
    )
    both = role_summary([tie, call("io-sweep@latency=500", "async", "sync", 0.98)])
    assert both.startswith("a tie in every mix: io-sweep@latency=100: async ≈ sync")


def test_a_decided_winner_is_bold_and_a_lone_variant_is_listed_beside_it() -> None:
    won = call("orm-n-plus-1", "sync", "bridged", 1.43, decided=True)
    text = role_summary([won, call("cpu-heavy", "sync")])
    assert text.startswith("**sync** in 1 of 2 mixes (×1.43 [1.29, 1.57] over bridged)")
    assert text.endswith("; but cpu-heavy: sync (the only variant measured)")


def test_a_verdict_is_too_noisy_when_its_per_round_margins_disagree_not_when_a_cell_is_flagged() -> None:
    import pandas as pd

    from lab.answer import calls
    from lab.decide import decide

    def cell(point: str, variant: str, rps: list[float], noisy: int = 0) -> list[dict[str, object]]:
        return [
            {"tier": "http", "status": "ok", "middleware": "default", "point": point, "role": "gil", "variant": variant,
             "concurrency": 32, "throughput_rps": r, "p95_ms": 10.0, "interpreter": "cpython-3.13", "paired": 1,
             "repeat": i, "noisy": noisy}
            for i, r in enumerate(rps)
        ]  # fmt: skip

    steady = cell("orm", "sync", [100, 120, 80, 110, 90], noisy=1) + cell("orm", "async", [60, 72, 48, 66, 54], noisy=1)
    shaky = cell("cpu", "sync", [100, 100, 100, 100, 100]) + cell("cpu", "async", [60, 140, 70, 130, 65])
    values = pd.DataFrame(steady + shaky)
    found = {c.point: c for c in calls(values, decide(values))}
    assert found["orm"].winner == "sync" and found["orm"].decided and found["orm"].noisy == ""
    assert found["cpu"].noisy.startswith("per-round margins spread")
