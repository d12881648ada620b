from __future__ import annotations

from typing import Any

import pandas as pd

from lab.claims import ledger


def rows(point: str, role: str, variant: str, rps: list[float], middleware: str = "default") -> list[dict[str, Any]]:
    return [
        {"tier": "http", "status": "ok", "middleware": middleware, "point": point, "role": role, "variant": variant,
         "concurrency": 32, "throughput_rps": r, "p95_ms": 20.0, "interpreter": role}
        for r in rps
    ]  # fmt: skip


def crossings() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"kind": "direct", "concurrency": 1, "gil_us": 30.0, "gil_ci": 1.0, "ft_us": 69.0, "ft_ci": 2.0},
            {"kind": "sync_to_async", "concurrency": 1, "gil_us": 80.0, "gil_ci": 2.0, "ft_us": 70.0, "ft_ci": 2.0},
            {"kind": "executor", "concurrency": 1, "gil_us": 30.0, "gil_ci": 1.0, "ft_us": 25.0, "ft_ci": 1.0},
            {"kind": "sync_to_async", "concurrency": 4, "gil_us": 90.0, "gil_ci": 3.0, "ft_us": 60.0, "ft_ci": 3.0},
            {
                "kind": "sync_to_async-ts-off",
                "concurrency": 4,
                "gil_us": 50.0,
                "gil_ci": 3.0,
                "ft_us": 58.0,
                "ft_ci": 3.0,
            },
        ]
    )


def test_verdicts_follow_the_intervals() -> None:
    data: list[dict[str, Any]] = []
    for role in ("gil", "ft"):
        data += rows("orm-reads", role, "sync", [200, 202, 198]) + rows("orm-reads", role, "bridged", [100, 101, 99])
        data += rows("orm-reads", role, "async", [120, 121, 119])
        data += rows("io-fanout", role, "sync", [50, 51, 49]) + rows("io-fanout", role, "async", [150, 151, 149])
        data += rows("io-fanout", role, "async", [100, 101, 99], middleware="sync-audit")
    table = ledger(pd.DataFrame(data), crossings(), slo_ms=100).set_index("claim")
    # 3.13: 80 - 30 µs, clearly above zero; 3.13t: 70 - 69 µs, within the noise.
    assert table.loc["C1", "gil_verdict"] == "supported"
    assert "costs 50.0 ± 2.2 µs per call over a direct call" in str(table.loc["C1", "gil_evidence"])
    assert table.loc["C1", "ft_verdict"] == "inconclusive"
    # thread_sensitive on is slower than off with 4 callers on 3.13, not distinguishable on 3.13t.
    assert (table.loc["C2", "gil_verdict"], table.loc["C2", "ft_verdict"]) == ("supported", "inconclusive")
    assert table.loc["C3", "ft_verdict"] == "supported"
    assert "orm-reads bridged/sync req/s = 0.50" in str(table.loc["C3", "ft_evidence"])
    assert table.loc["C4", "gil_verdict"] == "supported"
    assert table.loc["C5", "gil_verdict"] == "supported"
    assert table.loc["C6", "gil_verdict"] == "supported"


def test_unmeasured_claims_say_what_to_run() -> None:
    data = rows("orm-reads", "gil", "sync", [1.0, 1.0]) + rows("orm-reads", "ft", "sync", [1.0, 1.0])
    table = ledger(pd.DataFrame(data), pd.DataFrame(), slo_ms=100).set_index("claim")
    assert table.loc["C1", "gil_verdict"] == "not measured"
    assert table.loc["C6", "ft_evidence"] == "run with --middleware default --middleware sync-audit"
