"""CPU accounting on synthetic cells and crossing costs with known answers (lab.accounting)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from lab.accounting import COMPONENTS, NOT_MEASURED, account, client_kind, markdown_lines, role_costs, upstream_calls
from lab.errors import LabError

# µs per call at 1 and 4 callers, shaped like report.crossing_table: hop minus direct is
# 0.2 ms for sync_to_async and 0.5 ms for async_to_sync at one caller on 3.13.
COSTS_US = {
    "direct": (100.0, 50.0),
    "sync_to_async": (300.0, 150.0),
    "async_to_sync": (600.0, 300.0),
    "client/httpx-sync": (600.0, 300.0),
    "client/httpx-async": (1500.0, 750.0),
    "client/aiohttp": (400.0, 200.0),
}


def crossing_table(extra: dict[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    rows = []
    for kind, (one, four) in {**COSTS_US, **(extra or {})}.items():
        for concurrency, us in ((1, one), (4, four)):
            # 3.13t costs are double: a role mix-up shows as a factor of two.
            rows.append({"kind": kind, "concurrency": concurrency, "gil_us": us, "ft_us": 2 * us})
    return pd.DataFrame(rows)


def cell(**overrides: Any) -> dict[str, Any]:
    """``async`` on uvicorn:1, 3.13: 9.6 ms of server CPU, 9 crossings, one httpx call."""
    base: dict[str, Any] = {
        "point": "io-sweep@latency=100",
        "variant": "async",
        "role": "gil",
        "server_spec": "uvicorn:1",
        "cores": 2,
        "concurrency": 32,
        "server_cpu_ms_per_req": 9.6,
        "crossings": 9,
        "upstream_calls": 1,
        "client": "httpx",
    }
    return {**base, **overrides}


def components(result_tidy: pd.DataFrame, **where: Any) -> dict[str, tuple[float, str]]:
    rows = result_tidy
    for key, value in where.items():
        rows = rows[rows[key] == value]
    return {r["component"]: (r["ms_per_request"], r["source"]) for r in rows.to_dict("records")}


def test_components_and_remainder_add_up_to_the_measured_cpu() -> None:
    result = account(pd.DataFrame([cell()]), crossing_table())
    parts = components(result.tidy)
    assert list(parts) == list(COMPONENTS)
    assert parts["crossings"][0] == pytest.approx(9 * 0.2)
    assert parts["upstream client"][0] == pytest.approx(1.5)
    assert math.isnan(parts["server + framework"][0]) and parts["server + framework"][1].startswith(NOT_MEASURED)
    assert math.isnan(parts["connections opened"][0]) and parts["connections opened"][1].startswith(NOT_MEASURED)
    assert parts["remainder"][0] == pytest.approx(9.6 - 1.8 - 1.5)
    measured = [ms for ms, _ in parts.values() if not math.isnan(ms)]
    assert sum(measured) == pytest.approx(9.6)
    assert "9 × 200 µs (sync_to_async − direct)" in parts["crossings"][1]
    assert "client/httpx-async" in parts["upstream client"][1]


def test_empty_endpoint_is_the_server_share_and_its_crossings_are_not_counted_twice() -> None:
    empty = cell(point="empty", server_cpu_ms_per_req=4.0, crossings=3, upstream_calls=0)
    sync_empty = cell(point="empty", variant="sync", server_spec="gunicorn-gthread:1x32", server_cpu_ms_per_req=1.0)
    result = account(pd.DataFrame([cell(), empty, sync_empty]), crossing_table())
    # The baseline cells get no rows of their own.
    assert set(result.tidy["point"]) == {"io-sweep@latency=100"}
    parts = components(result.tidy)
    assert parts["server + framework"] == (4.0, "empty endpoint on uvicorn:1")
    assert parts["crossings"][0] == pytest.approx(6 * 0.2)
    assert "beyond the empty endpoint's" in parts["crossings"][1]
    assert parts["remainder"][0] == pytest.approx(9.6 - 4.0 - 1.2 - 1.5)


def test_empty_endpoint_of_another_variant_on_the_same_server_is_used_and_said() -> None:
    empty = cell(point="empty", variant="sync-on-asgi", server_cpu_ms_per_req=5.0, crossings=2)
    parts = components(account(pd.DataFrame([cell(), empty]), crossing_table()).tidy)
    assert parts["server + framework"] == (5.0, "empty endpoint on uvicorn:1 (other variants)")
    # A different server or interpreter is never a baseline.
    other = cell(point="empty", server_spec="uvicorn:2", server_cpu_ms_per_req=5.0)
    ft = cell(point="empty", role="ft", server_cpu_ms_per_req=5.0)
    parts = components(account(pd.DataFrame([cell(), other, ft]), crossing_table()).tidy)
    assert math.isnan(parts["server + framework"][0])


def test_split_counts_cost_each_direction_and_the_cold_first_crossing() -> None:
    costs = crossing_table({"sync_to_async-request": (250.0, 125.0), "sync_to_async-cold": (400.0, 200.0)})
    row = cell(crossings=9, crossings_sync_to_async=8, crossings_async_to_sync=1)
    parts = components(account(pd.DataFrame([row]), costs).tidy)
    # 1 cold (0.3 ms) + 7 in-request (0.15 ms) + 1 async_to_sync (0.5 ms)
    assert parts["crossings"][0] == pytest.approx(0.3 + 7 * 0.15 + 0.5)
    assert "sync_to_async-request" in parts["crossings"][1]


def test_clients_follow_the_variant_and_the_client_dimension() -> None:
    assert client_kind({"variant": "sync"}) == "httpx-sync"
    assert client_kind({"variant": "bridged", "client": "aiohttp"}) == "httpx-sync"
    assert client_kind({"variant": "async", "client": "aiohttp"}) == "aiohttp"
    assert client_kind({"variant": "async-db", "query": "latency=20&client=aiohttp"}) == "aiohttp"
    assert client_kind({"variant": "async"}) == "httpx-async"
    rows = [
        cell(client="aiohttp", upstream_calls=2),
        cell(variant="sync", server_spec="gunicorn-gthread:1x32", crossings=0),
    ]
    result = account(pd.DataFrame(rows), crossing_table())
    assert components(result.tidy, variant="async")["upstream client"][0] == pytest.approx(2 * 0.4)
    sync = components(result.tidy, variant="sync")
    assert sync["upstream client"][0] == pytest.approx(0.6)
    assert sync["crossings"] == (0.0, "no crossings")


def test_upstream_calls_from_the_probe_else_the_endpoint() -> None:
    assert upstream_calls({"upstream_calls": 4, "endpoint": "external"}) == (4.0, "probe count")
    assert upstream_calls({"endpoint": "external", "query": "k=5&latency=20&mode=fanout"}) == (5.0, "from the query")
    assert upstream_calls({"endpoint": "external", "query": "latency=20"}) == (3.0, "from the query")
    assert upstream_calls({"endpoint": "billing", "query": "latency=20"}) == (1.0, "from the endpoint")
    assert upstream_calls({"endpoint": "orm", "query": "n=20"}) == (0.0, "from the endpoint")
    for unknown in ({}, {"endpoint": "", "query": ""}, {"upstream_calls": -1}):
        calls, why = upstream_calls(unknown)
        assert math.isnan(calls) and "no probe count" in why


def test_connections_opened_need_a_probe_count_and_a_connect_cost() -> None:
    rows = [cell(db_connections_opened=1), cell(role="ft", db_connections_opened=1)]
    result = account(pd.DataFrame(rows), crossing_table(), connect_cost_ms={"gil": 0.8})
    assert components(result.tidy, role="gil")["connections opened"] == (0.8, "1 per request × 0.8 ms connect")
    ft = components(result.tidy, role="ft")["connections opened"]
    assert math.isnan(ft[0]) and ft[1] == f"{NOT_MEASURED}: 1 per request, no connect cost given"
    ft_parts = components(result.tidy, role="ft")
    # 3.13t costs come from the ft columns (double here).
    assert ft_parts["crossings"][0] == pytest.approx(9 * 0.4)


def test_costs_at_the_callers_asked_for_else_the_fewest_measured() -> None:
    table = crossing_table()
    assert role_costs(table, "gil", callers=4).sync_to_async == pytest.approx(0.1)
    fallback = role_costs(table, "gil", callers=2)
    assert fallback.callers == 1 and fallback.sync_to_async == pytest.approx(0.2)
    assert fallback.client("aiohttp") == pytest.approx(0.4)
    assert math.isnan(role_costs(pd.DataFrame(), "gil").sync_to_async)


def test_without_crossing_benchmarks_the_costs_are_not_measured() -> None:
    parts = components(account(pd.DataFrame([cell()]), pd.DataFrame()).tidy)
    assert math.isnan(parts["crossings"][0]) and "no sync_to_async benchmark" in parts["crossings"][1]
    assert math.isnan(parts["upstream client"][0]) and "no client/httpx-async benchmark" in parts["upstream client"][1]
    assert parts["remainder"][0] == pytest.approx(9.6)


def test_pivot_and_markdown() -> None:
    rows = [cell(), cell(variant="sync", server_spec="gunicorn-gthread:1x32", crossings=0, server_cpu_ms_per_req=2.6)]
    result = account(pd.DataFrame(rows), crossing_table())
    pivot = result.pivot.set_index("variant")
    assert list(result.pivot.columns)[-6:] == [*COMPONENTS, "measured"]
    assert pivot.loc["sync", "measured"] == pytest.approx(2.6)
    assert pivot.loc["async", "remainder"] == pytest.approx(6.3)
    parts = pivot.loc["async", list(COMPONENTS)].astype(float)
    assert parts.sum(skipna=True) == pytest.approx(pivot.loc["async", "measured"])
    lines = markdown_lines(result)
    assert lines[0].startswith("| mix | variant | interpreter | server | measured ms | server + framework |")
    assert lines[2] == (
        "| io-sweep@latency=100 [httpx] | async | 3.13 | uvicorn:1 | 9.60 | not measured | 1.80 | 1.50 | not measured | 6.30 |"
    )


def test_missing_columns_are_named() -> None:
    with pytest.raises(LabError, match="missing columns server_cpu_ms_per_req"):
        account(pd.DataFrame([cell()]).drop(columns=["server_cpu_ms_per_req"]), crossing_table())


def test_empty_endpoint_must_have_the_same_middleware_stack() -> None:
    row = cell(middleware="django-default")
    empty = cell(point="empty", middleware="default", server_cpu_ms_per_req=4.0)
    parts = components(account(pd.DataFrame([row, empty]), crossing_table()).tidy)
    assert math.isnan(parts["server + framework"][0])
    same = cell(point="empty", middleware="django-default", server_cpu_ms_per_req=6.0, crossings=0)
    parts = components(account(pd.DataFrame([row, empty, same]), crossing_table()).tidy)
    assert parts["server + framework"][0] == 6.0
    # The empty endpoint made no crossing, so this request's first one is its cold start (if measured).
    assert parts["crossings"][0] == pytest.approx(9 * 0.2)
