"""Binding limits on synthetic cells with known answers (lab.limits)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from lab.errors import LabError
from lab.limits import BINDING_LIMITS, OUTPUT_COLUMNS, cell_limits, cell_means, limits


def cell(**overrides: Any) -> dict[str, Any]:
    """The issue's io-sweep@100 sync cell: gthread 1x8 facing 32 connections, 2 cores, 3.13t."""
    base: dict[str, Any] = {
        "tier": "http",
        "point": "io-sweep@latency=100",
        "middleware": "default",
        "variant": "sync",
        "role": "ft",
        "server_spec": "gunicorn-gthread:1x8",
        "cores": 2,
        "rate_fraction": 0.0,
        "concurrency": 32,
        "throughput_rps": 76.0,
        "server_cpu_ms_per_req": 2.4,
        "nominal_wait_ms": 100.0,
        "status": "ok",
    }
    return {**base, **overrides}


def test_thread_starved_gthread_is_bound_by_its_threads() -> None:
    out = cell_limits(cell())
    assert out["concurrency_bound_rps"] == pytest.approx(8 / 0.1024)  # 78.1 req/s
    assert out["cpu_bound_rps"] == pytest.approx(2 * 1000 / 2.4)  # 833 req/s
    assert out["slots"] == 8 and out["hold_ms"] == pytest.approx(102.4)
    assert out["binding_limit"] == "threads"
    assert out["bound_fraction"] == pytest.approx(76 / 78.125)
    assert out["limit_text"] == "threads: 76 of 78 req/s bound (97%; 8 threads / 102.4 ms held)"


def test_one_process_with_the_gil_uses_one_core() -> None:
    out = cell_limits(cell(role="gil", nominal_wait_ms=0.0, throughput_rps=400.0))
    assert out["usable_cores"] == 1
    assert out["cpu_bound_rps"] == pytest.approx(1000 / 2.4)
    assert out["binding_limit"] == "cpu"
    assert out["limit_text"] == "CPU: 400 of 417 req/s bound (96%; 1 of 2 cores: GIL, 1 process)"
    # A 3.13t cell whose GIL came back on is capped the same way, whatever its role.
    assert cell_limits(cell(gil_enabled_at_end=1, nominal_wait_ms=0.0))["usable_cores"] == 1
    # Two processes with the GIL reach both cores.
    assert cell_limits(cell(role="gil", server_spec="gunicorn-gthread:2x4"))["usable_cores"] == 2


def test_uvicorn_on_one_core_is_bound_by_cpu() -> None:
    out = cell_limits(
        cell(server_spec="uvicorn:1", variant="async", cores=1, server_cpu_ms_per_req=9.6, throughput_rps=100.0)
    )
    assert out["cpu_bound_rps"] == pytest.approx(1000 / 9.6)  # 104 req/s
    # An event loop does not cap requests in flight: every connection is a slot.
    assert out["slots"] == 32
    assert out["concurrency_bound_rps"] == pytest.approx(32 * 1000 / 109.6)
    assert out["binding_limit"] == "cpu"
    assert out["limit_text"] == "CPU: 100 of 104 req/s bound (96%)"


def test_enough_threads_leaves_the_connections_as_the_slots() -> None:
    out = cell_limits(cell(server_spec="gunicorn-gthread:1x64", throughput_rps=300.0))
    assert out["slots"] == 32
    assert out["binding_limit"] == "connections"
    assert out["concurrency_bound_rps"] == pytest.approx(32 * 1000 / 102.4)


def test_gunicorn_sync_slots_are_its_workers() -> None:
    out = cell_limits(
        cell(server_spec="gunicorn-sync:2", nominal_wait_ms=20.0, server_cpu_ms_per_req=5.0, throughput_rps=78.0)
    )
    assert out["slots"] == 2
    assert out["concurrency_bound_rps"] == pytest.approx(80.0)
    assert out["binding_limit"] == "workers"
    assert out["limit_text"].startswith("workers: 78 of 80 req/s bound (98%; 2 workers / 25.0 ms held)")


def test_busy_load_generator_binds_whatever_the_server_bounds_say() -> None:
    out = cell_limits(cell(load_busy=0.9))
    assert out["binding_limit"] == "load generator"
    assert out["load_bound_rps"] == pytest.approx(76 / 0.9)
    assert "busy 90%" in out["limit_text"]
    # Below the threshold the load generator's bound is reported but does not bind.
    quiet = cell_limits(cell(load_busy=0.5))
    assert quiet["binding_limit"] == "threads" and quiet["load_bound_rps"] == pytest.approx(152.0)


def test_a_cell_short_of_every_bound_reaches_none() -> None:
    out = cell_limits(
        cell(
            server_spec="uvicorn:1",
            variant="async",
            server_cpu_ms_per_req=10.0,
            nominal_wait_ms=0.0,
            throughput_rps=100.0,
        )
    )
    assert out["cpu_bound_rps"] == pytest.approx(200.0)
    assert out["binding_limit"] == "none reached"
    assert out["limit_text"] == (
        "none reached: 100 req/s, 50% of the tightest bound (CPU 200 req/s; server busy 1.00 of 2 usable cores)"
    )


def test_shared_cpus_count_the_helpers_cpu_against_the_budget() -> None:
    shared = cell(
        cpu_layout="shared: server, load generator and upstream on CPUs 0,1",
        load_cpu_share=0.25,
        upstream_cpu_share=0.25,
        server_cpu_ms_per_req=2.0,
        nominal_wait_ms=0.0,
        server_spec="gunicorn-gthread:1x32",
        throughput_rps=650.0,
    )
    out = cell_limits(shared)
    assert out["cpu_bound_rps"] == pytest.approx(2000 / (2.0 * 1.5))  # 667, not 1000
    assert out["binding_limit"] == "cpu"
    assert "shared with load generator and upstream, +50% CPU" in out["limit_text"]
    pinned = cell_limits({**shared, "cpu_layout": "server on CPUs 0; load generator and upstream on CPUs 1"})
    assert pinned["cpu_bound_rps"] == pytest.approx(1000.0)


def test_open_loop_offered_rate_is_a_bound() -> None:
    out = cell_limits(cell(server_spec="gunicorn-gthread:1x32", rate_rps=50.0, throughput_rps=49.5))
    assert out["binding_limit"] == "offered rate"
    assert out["bound_rps"] == 50.0


def test_in_process_cells_and_missing_cpu_are_unknown() -> None:
    handler = cell_limits(cell(tier="handler", server_spec="in-process", server_cpu_ms_per_req=math.nan))
    assert handler["binding_limit"] == "unknown"
    assert math.isnan(handler["cpu_bound_rps"]) and math.isnan(handler["concurrency_bound_rps"])
    assert "no server CPU per request" in handler["limit_text"]


def test_limits_adds_the_columns_and_keeps_the_rows() -> None:
    frame = pd.DataFrame(
        [
            cell(),
            cell(server_spec="uvicorn:1", variant="async", cores=1, server_cpu_ms_per_req=9.6, throughput_rps=100.0),
        ]
    )
    out = limits(frame)
    assert list(out.columns) == [*frame.columns, *OUTPUT_COLUMNS]
    assert out["binding_limit"].tolist() == ["threads", "cpu"]
    assert set(out["binding_limit"]) <= set(BINDING_LIMITS)
    assert out["concurrency_bound_rps"].iloc[0] == pytest.approx(78.125)
    # Running it twice replaces the columns instead of duplicating them.
    assert list(limits(out).columns) == list(out.columns)


def test_limits_names_missing_columns() -> None:
    with pytest.raises(LabError, match="missing columns nominal_wait_ms"):
        limits(pd.DataFrame([cell()]).drop(columns=["nominal_wait_ms"]))


def test_cell_means_averages_ok_repeats_per_cell_and_dimension() -> None:
    rows = [
        cell(throughput_rps=70.0, server_cpu_ms_per_req=2.0, client="httpx"),
        cell(throughput_rps=80.0, server_cpu_ms_per_req=3.0, client="httpx"),
        cell(throughput_rps=0.0, server_cpu_ms_per_req=math.nan, client="httpx", status="failed"),
        cell(throughput_rps=90.0, client="aiohttp"),
    ]
    means = cell_means(pd.DataFrame(rows)).set_index("client")
    assert means.loc["httpx", "throughput_rps"] == pytest.approx(75.0)
    assert means.loc["httpx", "server_cpu_ms_per_req"] == pytest.approx(2.5)
    assert means.loc["httpx", "repeats"] == 2
    assert means.loc["aiohttp", "throughput_rps"] == pytest.approx(90.0)
    assert means.loc["httpx", "server_spec"] == "gunicorn-gthread:1x8"


def test_a_skewed_worker_split_binds_below_the_cpu_and_concurrency_bounds() -> None:
    # The 2026-12-01 stream cells on 3.13: uvicorn 2 workers, 256 connections, 500 ms held,
    # 3.1 ms CPU; nearly every connection on one worker, whose loop holds the GIL on one core.
    stream = cell(
        role="gil",
        variant="async",
        server_spec="uvicorn:2",
        concurrency=256,
        nominal_wait_ms=500.0,
        server_cpu_ms_per_req=3.1,
        throughput_rps=318.0,
        busiest_worker_share=31 / 32,
    )
    out = cell_limits(stream)
    busiest = min(1000 / 3.1, 248 * 1000 / 503.1)  # one core: 323 req/s
    rest = min(1000 / 3.1, 8 * 1000 / 503.1)  # 8 connections: 16 req/s
    assert out["split_bound_rps"] == pytest.approx(busiest + rest)
    assert out["binding_limit"] == "worker split"
    assert (
        out["limit_text"]
        == "worker split: 318 of 338 req/s bound (94%; busiest of 2 workers held 97% of the connections)"
    )
    # Split evenly, the same cell is bound by CPU (both cores) and the split changes nothing.
    even = cell_limits({**stream, "busiest_worker_share": 0.5})
    assert even["split_bound_rps"] >= min(even["cpu_bound_rps"], even["concurrency_bound_rps"])
    assert even["binding_limit"] != "worker split"
    assert even["limit_text"].endswith("; busiest of 2 workers held 50% of the connections")
    # Not sampled (one worker, or a run before the split was recorded): no split bound, no text.
    unknown = cell_limits({**stream, "busiest_worker_share": math.nan})
    assert math.isnan(unknown["split_bound_rps"]) and "busiest" not in unknown["limit_text"]
    assert math.isnan(cell_limits(cell(busiest_worker_share=1.0))["split_bound_rps"])  # gthread 1x8


def test_gthread_workers_with_more_connections_than_threads_leave_the_extra_waiting() -> None:
    # 2x16 facing 32 connections at 500 ms, 24 on one worker: 16 + 8 threads busy, not 32.
    out = cell_limits(
        cell(
            role="gil",
            server_spec="gunicorn-gthread:2x16",
            nominal_wait_ms=500.0,
            server_cpu_ms_per_req=3.0,
            throughput_rps=46.0,
            busiest_worker_share=0.75,
        )
    )
    assert out["split_bound_rps"] == pytest.approx(24 * 1000 / 503.0)
    assert out["concurrency_bound_rps"] == pytest.approx(32 * 1000 / 503.0)
    assert out["binding_limit"] == "worker split"


@pytest.mark.parametrize(
    ("text", "share"), [("26/6", 26 / 32), ("32", 1.0), ("-", math.nan), ("0/0", math.nan), ("x/2", math.nan)]
)
def test_busiest_share_reads_a_recorded_split(text: str, share: float) -> None:
    from lab.limits import busiest_share

    got = busiest_share(text)
    assert (math.isnan(got) and math.isnan(share)) or got == pytest.approx(share)


def test_a_cell_has_a_split_only_when_every_round_sampled_it() -> None:
    rounds = pd.DataFrame(
        [
            cell(server_spec="uvicorn:2", repeat=0, throughput_rps=255.0, busiest_worker_share=1.0),
            cell(server_spec="uvicorn:2", repeat=1, throughput_rps=367.0, busiest_worker_share=math.nan),
            cell(server_spec="gunicorn-gthread:2x16", repeat=0, busiest_worker_share=0.75),
            cell(server_spec="gunicorn-gthread:2x16", repeat=1, busiest_worker_share=0.75),
        ]
    )
    shares = cell_means(rounds).set_index("server_spec")["busiest_worker_share"].to_dict()
    assert math.isnan(shares["uvicorn:2"])
    assert shares["gunicorn-gthread:2x16"] == pytest.approx(0.75)


def test_a_closed_loop_cell_above_connections_over_wait_is_flagged_as_an_artifact() -> None:
    # 256 connections each held 1 s cannot serve 320 req/s (run 2026-12-01-async-pays, long-poll).
    long_poll = {
        "role": "ft",
        "server_spec": "gunicorn-gthread:1x256",
        "cores": 2,
        "concurrency": 256,
        "throughput_rps": 320.0,
        "server_cpu_ms_per_req": 1.2,
        "nominal_wait_ms": 1000.0,
    }
    flagged = cell_limits(long_poll)
    assert flagged["above_ceiling"] and "ABOVE the ceiling of 256 connections / 1,000 ms wait" in flagged["limit_text"]
    assert not cell_limits({**long_poll, "throughput_rps": 255.0})["above_ceiling"]
    # An open loop's rate is what it offered; the ceiling is a closed-loop argument.
    assert not cell_limits({**long_poll, "rate_rps": 300.0})["above_ceiling"]
    assert not cell_limits({**long_poll, "nominal_wait_ms": 0.0})["above_ceiling"]
