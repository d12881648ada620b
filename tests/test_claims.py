"""Every claim rule on synthetic frames whose answers are known: each can come out supported,
refuted and inconclusive, and says what it compared."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pytest

from lab.claims import CLAIMS, RULES, base_point, c4, c7, client_of, ledger

Rows = list[dict[str, Any]]


def http(
    point: str,
    role: str,
    variant: str,
    rps: Sequence[float],
    *,
    middleware: str = "default",
    crossings: int = 0,
    cpu_ms: float = 5.0,
    p95: float = 20.0,
    concurrency: int = 32,
    server: str = "uvicorn:1",
    load_mode: str = "closed",
) -> Rows:
    return [
        {"tier": "http", "status": "ok", "middleware": middleware, "point": point, "role": role, "variant": variant,
         "concurrency": concurrency, "throughput_rps": r, "p95_ms": p95, "p50_ms": p95 / 2, "interpreter": role,
         "server_spec": server, "cores": 2, "load_mode": load_mode, "crossings_total": crossings,
         "server_cpu_ms_per_req": cpu_ms * (1 + 0.001 * i), "repeat": i}
        for i, r in enumerate(rps)
    ]  # fmt: skip


def handler(point: str, role: str, threads: int, rps: Sequence[float]) -> Rows:
    return [
        {"tier": "handler", "status": "ok", "middleware": "default", "point": point, "role": role, "variant": "sync",
         "concurrency": threads, "throughput_rps": r, "p95_ms": math.nan, "interpreter": role, "repeat": i}
        for i, r in enumerate(rps)
    ]  # fmt: skip


def runs(kind: str, role: str, per_process: list[float], concurrency: int = 1) -> Rows:
    """Two pyperf values per process, averaging to the given per-process means."""
    return [
        {"kind": kind, "concurrency": concurrency, "role": role, "run": i, "us": us * f}
        for i, us in enumerate(per_process)
        for f in (0.999, 1.001)
    ]


def table(df: Rows, crossing_runs: Rows | None = None, crossings: pd.DataFrame | None = None) -> pd.DataFrame:
    return ledger(
        pd.DataFrame(df),
        crossings if crossings is not None else pd.DataFrame(),
        slo_ms=100,
        crossing_runs=pd.DataFrame(crossing_runs) if crossing_runs else None,
    ).set_index("claim")


def both(rows_for: Any) -> Rows:
    return [row for role in ("gil", "ft") for row in rows_for(role)]


# -- C1 -----------------------------------------------------------------------------

C1_CASES = {
    # 1 cold (300 µs) + 9 warm (50 µs) crossings = 0.75 ms of 2 ms of server CPU: ~37%.
    "supported": dict(request=50.0, cold=300.0, crossings=10, cpu_ms=2.0),
    # 1 x 20 + 1 x 5 µs of 10 ms: 0.25%.
    "refuted": dict(request=5.0, cold=20.0, crossings=2, cpu_ms=10.0),
    # 100 + 50 µs of 5 ms: 3%, between the floors.
    "inconclusive": dict(request=50.0, cold=100.0, crossings=2, cpu_ms=5.0),
}


@pytest.mark.parametrize("expected", sorted(C1_CASES))
def test_c1_share_of_request_time_decides(expected: str) -> None:
    case = C1_CASES[expected]
    base = [200.0, 202.0, 198.0]
    crossing_runs = both(
        lambda r: (
            runs("direct", r, base)
            + runs("sync_to_async-request", r, [b + float(case["request"]) for b in base])
            + runs("sync_to_async-cold", r, [b + float(case["cold"]) for b in base])
        )
    )
    df = both(
        lambda r: (
            http("billing", r, "sync", [100, 101, 99], server="gunicorn-gthread:1x8")
            + http(
                "billing", r, "bridged", [80, 81, 79], crossings=int(case["crossings"]), cpu_ms=float(case["cpu_ms"])
            )
        )
    )
    row = table(df, crossing_runs).loc["C1"]
    assert row["gil_verdict"] == expected
    assert row["ft_verdict"] == expected
    assert "interval over 3 processes" in row["gil_evidence"]
    assert f"billing bridged {case['crossings']} crossings" in row["gil_evidence"]


def test_c1_says_which_path_and_whether_it_matches_django() -> None:
    base = [200.0, 202.0, 198.0]
    crossing_runs = runs("direct", "gil", base) + runs("sync_to_async-request", "gil", [b + 40 for b in base])
    crossing_runs += runs("sync_to_async-cold", "gil", [b + 2000 for b in base])
    crossing_runs += runs("sync_to_async", "gil", [b + 120 for b in base])
    evidence = str(
        table(http("billing", "gil", "bridged", [1, 1, 1], crossings=3), crossing_runs).loc["C1", "gil_evidence"]
    )
    assert "in-request (own context, warm thread) 40.0" in evidence
    assert "agrees with Django's 'tens of µs'" in evidence
    assert "cold (fresh context per call) 2000.0" in evidence
    assert "above Django's 'a few hundred µs'" in evidence
    assert "global executor (no request context) 120.0" in evidence


def test_c1_without_per_process_values_says_its_interval_is_over_values() -> None:
    crossings = pd.DataFrame(
        [
            {"kind": "direct", "concurrency": 1, "gil_us": 30.0, "gil_ci": 1.0},
            {"kind": "sync_to_async", "concurrency": 1, "gil_us": 80.0, "gil_ci": 2.0},
        ]
    )
    row = table(http("orm-reads", "gil", "async", [1, 1, 1], crossings=5), crossings=crossings).loc["C1"]
    # 5 x 50 µs of 5 ms CPU = 5.0% ± the interval: straddles the 5% floor.
    assert row["gil_verdict"] == "inconclusive"
    assert "over pyperf values, not processes" in row["gil_evidence"]
    assert "global executor (no request context) 50.0 [47.8, 52.2] µs" in row["gil_evidence"]
    assert "global-executor (no in-request kind measured) cost" in row["gil_evidence"]


# -- C2 -----------------------------------------------------------------------------

C2_CASES: dict[str, dict[str, tuple[list[float], list[float]]]] = {
    # GIL-releasing helpers overlap with thread_sensitive off: the request takes half the time.
    "supported": {"py": ([5000, 5010, 4990], [5000, 5005, 4995]), "release": ([8000, 8100, 7900], [4000, 4100, 3900])},
    # Both work types take the same time either way (inside ±10%, tight intervals).
    "refuted": {"py": ([5000, 5010, 4990], [5000, 5005, 4995]), "release": ([4000, 4010, 3990], [4020, 4000, 4010])},
    # 1.2x slower, but one process in three was slow: the interval spans the margin.
    "inconclusive": {"py": ([5000, 7000, 6000], [5000, 5200, 4800])},
}


@pytest.mark.parametrize("expected", sorted(C2_CASES))
def test_c2_is_decided_on_the_request_path(expected: str) -> None:
    crossing_runs: Rows = []
    for work, (on, off) in C2_CASES[expected].items():
        crossing_runs += runs(f"request-gather-ts-on-{work}", "ft", [float(v) for v in on], concurrency=4)
        crossing_runs += runs(f"request-gather-ts-off-{work}", "ft", [float(v) for v in off], concurrency=4)
    # The global executor says the opposite; it is shown, not used.
    crossing_runs += runs("sync_to_async", "ft", [100.0, 101.0, 99.0], concurrency=4)
    crossing_runs += runs("sync_to_async-ts-off", "ft", [300.0, 301.0, 299.0], concurrency=4)
    row = table(http("billing", "ft", "sync", [1, 1, 1]), crossing_runs).loc["C2"]
    assert row["ft_verdict"] == expected
    assert "request path, 4 helpers gathered per request" in row["ft_evidence"]
    assert "global executor, 4 callers, no request context (not decisive)" in row["ft_evidence"]
    assert row["gil_verdict"] == "not measured"


def test_c2_without_request_kinds_is_not_measured_but_shows_the_global_pair() -> None:
    crossings = pd.DataFrame(
        [
            {"kind": "sync_to_async", "concurrency": 4, "gil_us": 90.0, "gil_ci": 3.0},
            {"kind": "sync_to_async-ts-off", "concurrency": 4, "gil_us": 50.0, "gil_ci": 3.0},
        ]
    )
    row = table(http("billing", "gil", "sync", [1, 1, 1]), crossings=crossings).loc["C2"]
    assert row["gil_verdict"] == "not measured"
    assert "on 90.0 vs off 50.0 µs/call" in row["gil_evidence"]


# -- C3 and C5 ----------------------------------------------------------------------

NOISY = ([195.0, 205.0, 200.0], [200.0, 190.0, 210.0])
C3_CASES: dict[str, dict[str, tuple[list[float], list[float]]]] = {
    "supported": {"orm-reads": ([100, 101, 99], [200, 202, 198]), "orm-n-plus-1": ([150, 151, 149], [200, 201, 199])},
    "refuted": {"orm-reads": ([100, 101, 99], [200, 202, 198]), "orm-n-plus-1": ([250, 251, 249], [200, 201, 199])},
    "inconclusive": {"orm-reads": ([100, 101, 99], [200, 202, 198]), "orm-n-plus-1": NOISY},
}


@pytest.mark.parametrize("expected", sorted(C3_CASES))
def test_c3_bridged_against_sync_per_orm_mix(expected: str) -> None:
    df: Rows = []
    for mix, (bridged, sync) in C3_CASES[expected].items():
        df += http(mix, "gil", "bridged", bridged) + http(mix, "gil", "sync", sync, server="gunicorn-gthread:1x8")
    df += http("orm-reads", "gil", "sync-on-asgi", [150, 151, 149])
    row = table(df).loc["C3"]
    assert row["gil_verdict"] == expected
    assert "orm-reads bridged/sync req/s = 0.50" in row["gil_evidence"]
    # The controls: bridging cost and server cost, apart.
    assert "bridged/sync-on-asgi 0.67" in row["gil_evidence"]
    assert "server: sync-on-asgi/sync 0.75" in row["gil_evidence"]
    if expected == "refuted":
        assert row["gil_evidence"].startswith("refuted on orm-n-plus-1 (bridged faster)")


C5_CASES: dict[str, dict[str, tuple[list[float], list[float]]]] = {
    "supported": {"orm-n-plus-1": ([60, 61, 59], [100, 101, 99])},
    "refuted": {"orm-n-plus-1": ([106, 107, 105], [100, 101, 99])},
    "inconclusive": {"orm-n-plus-1": NOISY},
}


@pytest.mark.parametrize("expected", sorted(C5_CASES))
def test_c5_lists_every_mix_and_names_counterexamples(expected: str) -> None:
    df: Rows = []
    for mix in ("orm-reads", "template-page", "orm-crud"):
        df += http(mix, "ft", "async", [50, 51, 49]) + http(mix, "ft", "sync", [100, 101, 99], server="g")
    for mix, (asynch, sync) in C5_CASES[expected].items():
        df += http(mix, "ft", "async", asynch) + http(mix, "ft", "sync", sync, server="g")
    row = table(df).loc["C5"]
    assert row["ft_verdict"] == expected
    for mix in ("orm-reads", "orm-n-plus-1", "template-page", "orm-crud"):
        assert f"{mix} async/sync req/s" in row["ft_evidence"]
    assert "orm-reads async/sync req/s = 0.50 [" in row["ft_evidence"]
    assert ("refuted on orm-n-plus-1 (async faster)" in row["ft_evidence"]) == (expected == "refuted")


# -- C4 -----------------------------------------------------------------------------


def decisions(*rows: tuple[str, str, bool], role: str = "gil") -> pd.DataFrame:
    return pd.DataFrame([{"point": p, "role": role, "winner": w, "decided": d} for p, w, d in rows])


FANOUT_ASYNC = [
    ("io-fanout-k@k=1", "sync", True),
    ("io-fanout-k@k=4", "async", False),
    ("io-fanout-k@k=16", "async", True),
]
LATENCY_SYNC = [(f"io-sweep@latency={v}", "sync", True) for v in (0, 20, 100, 500)]
C4_CASES = {
    "supported": FANOUT_ASYNC + LATENCY_SYNC + [("orm-reads", "sync", True)],
    # async also wins where there is no external call: not "mainly for fan-out".
    "refuted": [*FANOUT_ASYNC, ("orm-n-plus-1", "async", True)],
    # a tie at the top of the fan-out axis is not a win, and latency stops at 100 ms.
    "inconclusive": [("io-fanout-k@k=1", "sync", True), ("io-fanout-k@k=16", "async", False), *LATENCY_SYNC[:3]],
}


@pytest.mark.parametrize("expected", sorted(C4_CASES))
def test_c4_reads_both_axes(expected: str) -> None:
    finding = c4(decisions(*C4_CASES[expected]), "gil")
    assert finding.verdict == expected
    assert finding.evidence.startswith("with httpx: ")


def test_c4_refuted_when_async_never_wins_up_to_500_ms() -> None:
    finding = c4(decisions(*LATENCY_SYNC, ("io-fanout-k@k=16", "sync", True)), "gil")
    assert finding.verdict == "refuted"
    assert "latency 0…500 ms: no async win" in finding.evidence
    assert "fan-out k 16…16: no async win" in finding.evidence


def test_c4_names_each_client_and_disagreement_is_inconclusive() -> None:
    rows = [(f"{p}&client=aiohttp", w, d) for p, w, d in FANOUT_ASYNC] + [("io-fanout-k@k=16", "sync", True)]
    rows += LATENCY_SYNC
    finding = c4(decisions(*rows), "gil")
    assert finding.verdict == "inconclusive"
    assert "with aiohttp: fan-out k 1…16: async wins at 16" in finding.evidence
    assert "(supported)" in finding.evidence and "with httpx:" in finding.evidence and "(refuted)" in finding.evidence


def test_client_is_read_from_the_label() -> None:
    assert client_of("io-fanout-k@k=4&client=aiohttp") == "aiohttp"
    assert client_of("io-fanout-k@k=4") == "httpx"
    assert base_point("io-fanout-k[client=aiohttp]@k=4") == "io-fanout-k@k=4"
    assert base_point("io-sweep@latency=5@client=aiohttp") == "io-sweep@latency=5"


# -- C6 -----------------------------------------------------------------------------

C6_CASES: dict[str, tuple[list[float], list[float]]] = {
    "supported": ([80, 81, 79], [100, 101, 99]),
    "refuted": ([100.1, 101.1, 99.1], [100, 101, 99]),
    "inconclusive": ([90, 110, 95], [100, 101, 99]),
}


@pytest.mark.parametrize("expected", sorted(C6_CASES))
def test_c6_matches_shapes_and_ignores_open_loop(expected: str) -> None:
    audited, plain = C6_CASES[expected]
    df = http("orm-reads", "gil", "async", plain) + http("orm-reads", "gil", "async", audited, middleware="sync-audit")
    # Neither an open-loop cell nor an unmatched concurrency may take part.
    df += http("orm-reads", "gil", "async", [10, 10, 10], middleware="sync-audit", load_mode="open")
    df += http("orm-reads", "gil", "async", [10, 10, 10], middleware="sync-audit", concurrency=8)
    row = table(df).loc["C6"]
    assert row["gil_verdict"] == expected
    assert "orm-reads (c32, 2 cores, uvicorn:1) with/without sync middleware" in row["gil_evidence"]
    assert "SLO" not in row["gil_evidence"]


def test_c6_says_when_the_slo_is_missed() -> None:
    df = http("orm-reads", "gil", "async", [100, 101, 99], p95=300.0)
    df += http("orm-reads", "gil", "async", [80, 81, 79], middleware="sync-audit", p95=300.0)
    row = table(df).loc["C6"]
    assert row["gil_verdict"] == "supported"
    assert "p95 above the 100 ms SLO: compared anyway" in row["gil_evidence"]


# -- C7 -----------------------------------------------------------------------------


def even(gil: tuple[float, float, float], ft: tuple[float, float, float], top: float = 100.0) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"mix": "io-sweep", "param": "latency", "role": role, "break_even": b, "earliest": e, "latest": la,
             "max_value": top}
            for role, (e, b, la) in (("gil", gil), ("ft", ft))
        ]
    )  # fmt: skip


NAN = math.nan
C7_CASES = {
    "supported": ((25.0, 30.0, 35.0), (55.0, 60.0, 65.0)),
    # 3.13t's break-even never reaches the sweep's end even at its upper curve: wholly above.
    "supported-none": ((25.0, 30.0, 35.0), (NAN, NAN, NAN)),
    "refuted": ((55.0, 60.0, 65.0), (25.0, 30.0, 35.0)),
    # 3.13 never crosses, 3.13t does: the break-even moved toward async.
    "refuted-none": ((NAN, NAN, NAN), (25.0, 30.0, 35.0)),
    "inconclusive": ((25.0, 30.0, 45.0), (40.0, 50.0, 60.0)),
    "inconclusive-none": ((NAN, NAN, NAN), (NAN, NAN, NAN)),
}


@pytest.mark.parametrize("case", sorted(C7_CASES))
def test_c7_needs_both_break_even_intervals(case: str) -> None:
    gil, ft = C7_CASES[case]
    finding = c7(even(gil, ft), pd.DataFrame())
    assert finding.verdict == case.split("-")[0]
    assert "io-sweep break-even: 3.13 " in finding.evidence


GAIN_CASES: dict[str, tuple[list[float], ...]] = {
    "supported": ([100, 101, 99], [100, 101, 99], [180, 181, 179], [100, 101, 99]),
    "refuted": ([130, 131, 129], [100, 101, 99], [90, 91, 89], [100, 101, 99]),
    "inconclusive": ([120, 121, 119], [100, 101, 99], [121, 122, 120], [100, 101, 99]),
}


@pytest.mark.parametrize("expected", sorted(GAIN_CASES))
def test_c7_falls_back_to_the_gain_from_threads(expected: str) -> None:
    gil_many, gil_one, ft_many, ft_one = GAIN_CASES[expected]
    df = handler("cpu-heavy", "gil", 4, gil_many) + handler("cpu-heavy", "gil", 1, gil_one)
    df += handler("cpu-heavy", "ft", 4, ft_many) + handler("cpu-heavy", "ft", 1, ft_one)
    finding = c7(pd.DataFrame(), pd.DataFrame(df))
    assert finding.verdict == expected
    assert finding.evidence.startswith(
        "threaded sync Django gains from 4 threads over 1 (handler tier): cpu-heavy: 3.13t ×"
    )


def test_c7_break_even_decides_and_the_thread_gain_is_shown() -> None:
    df = handler("billing", "gil", 4, [100.0] * 3) + handler("billing", "gil", 1, [100.0] * 3)
    finding = c7(even((25.0, 30.0, 35.0), (55.0, 60.0, 65.0)), pd.DataFrame(df))
    assert finding.verdict == "supported"
    assert "billing: 3.13 ×1.00" in finding.evidence


# -- the ledger ---------------------------------------------------------------------


def test_ledger_carries_each_rule_beside_its_verdicts() -> None:
    table_ = ledger(pd.DataFrame(http("orm-reads", "gil", "sync", [1.0, 1.0])), pd.DataFrame(), slo_ms=100)
    assert list(table_.columns) == ["claim", "text", "rule", "gil_verdict", "gil_evidence", "ft_verdict", "ft_evidence"]
    assert list(table_["claim"]) == list(CLAIMS) == list(RULES)
    rows = table_.set_index("claim")
    assert rows.loc["C1", "gil_verdict"] == "not measured"
    assert rows.loc["C6", "ft_evidence"] == "run with --middleware default --middleware sync-audit"
    assert "above 5%" in str(rows.loc["C1", "rule"]) and "below 1%" in str(rows.loc["C1", "rule"])
