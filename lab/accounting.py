"""CPU accounting: where a cell's server CPU per request goes, from what the run measured.

For each HTTP cell (point, variant, interpreter, server), the measured server CPU per
request (``server_cpu_ms_per_req``) is split into components, each the product of a count
the probe recorded and a cost a microbenchmark measured, in milliseconds per request:

- ``server + framework``: the CPU per request of an empty endpoint (mix ``empty``) on the same
  server, core budget, middleware stack, interpreter and variant (any variant on that server
  if this one was not measured; the same connection count when measured, else their mean):
  what the server, its HTTP parser and Django's request path cost before the view does
  anything. "not measured" when the run has no such cells.
- ``crossings``: sync↔async crossings per request (the probe's steady-state count; those the
  empty endpoint already makes are in its share) × the hop's own cost, the crossing
  benchmark minus ``direct`` (the same work with no hop), with one caller so wall time is the
  caller's CPU. ``sync_to_async`` crossings are costed at ``sync_to_async-request`` (the
  in-request path Django takes) when the run measured it, else at ``sync_to_async``; a
  request's first crossing at ``sync_to_async-cold`` (it starts the request's thread) when
  measured and the empty endpoint did not already pay it; ``async_to_sync`` at its own kind
  when the values split counts by direction, otherwise all crossings at the sync_to_async cost.
- ``upstream client``: upstream HTTP calls per request × one call of the client this variant
  uses (``client/httpx-sync`` for sync code, ``client/httpx-async`` or ``client/aiohttp`` for
  async views, as the cell's ``client`` says; the views default to httpx). The client
  benchmark is the wall time of a call to the upstream simulator at 0 ms with one caller, so
  it includes the simulator's reply and loopback: an upper bound on the client's own CPU.
- ``connections opened``: database connections opened per request (probe key
  ``db_connections_opened``) × a connect cost the caller gives; "not measured" otherwise.
- ``remainder``: measured minus every component above, shown as such (the view's own
  work, the ORM, templates, and whatever the components miss); it can be negative when a
  microbenchmark overstates a cost in the server.

Components that could not be measured have ``ms_per_request`` NaN and say why in ``source``;
they do not enter the remainder, so the measured components plus the remainder always add
up to the measured CPU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import parse_qs

import pandas as pd

from lab.errors import LabError

Component = Literal["server + framework", "crossings", "upstream client", "connections opened", "remainder"]
COMPONENTS: tuple[Component, ...] = get_args(Component)
REQUIRED_COLUMNS = ("point", "variant", "role", "server_cpu_ms_per_req")
# Used when present: server_spec, cores, concurrency, mix, crossings (or
# crossings_sync_to_async and crossings_async_to_sync), upstream_calls (or endpoint and
# query), client, db_connections_opened.
KEY_COLUMNS = ("point", "variant", "role", "server_spec", "cores", "concurrency")
# Further cell dimensions, kept in the output when the cells have them.
EXTRA_KEY_COLUMNS = ("middleware", "rate_fraction", "client", "database", "db_pool", "pool", "stack")
EMPTY_MIX = "empty"
# Variants whose upstream calls go through the async client; the others call the sync one.
ASYNC_CLIENT_VARIANTS = frozenset({"async", "async-db"})
# Upstream calls per request by endpoint when no probe count is recorded: the views' defaults.
DEFAULT_CALLS = {"billing": 1, "external": 3}
SYNC_TO_ASYNC_KINDS = ("sync_to_async-request", "sync_to_async")
COLD_KIND = "sync_to_async-cold"
BASELINE_KIND = "direct"
NOT_MEASURED = "not measured"


@dataclass(frozen=True, kw_only=True)
class Accounting:
    """``tidy``: one row per cell and component; ``pivot``: one row per cell, a column per
    component plus ``measured`` (ms per request, NaN where not measured)."""

    tidy: pd.DataFrame
    pivot: pd.DataFrame


@dataclass(frozen=True, kw_only=True)
class Costs:
    """Measured costs for one interpreter role, in ms (NaN when the run did not measure it)."""

    sync_to_async: float = math.nan
    sync_to_async_kind: str = ""
    cold: float = math.nan
    async_to_sync: float = math.nan
    clients: Mapping[str, float] | None = None
    callers: int = 1

    def client(self, kind: str) -> float:
        return (self.clients or {}).get(kind, math.nan)


def _number(row: Mapping[str, Any], key: str) -> float:
    try:
        return float(row.get(key, math.nan))
    except (TypeError, ValueError):
        return math.nan


def role_costs(crossings: pd.DataFrame, role: str, callers: int = 1) -> Costs:
    """Costs for ``role`` ("gil"/"ft") from ``report.crossing_table``: hop minus ``direct``,
    at ``callers`` concurrent callers (else the fewest the run measured)."""
    column = f"{role}_us"
    if crossings.empty or column not in crossings.columns:
        return Costs()
    levels = sorted(int(c) for c in crossings["concurrency"].unique())
    at = callers if callers in levels else levels[0]
    rows = crossings[crossings["concurrency"] == at]
    us = {str(k): float(v) for k, v in zip(rows["kind"], rows[column], strict=True) if not math.isnan(float(v))}

    def hop_ms(kind: str) -> float:
        if kind not in us or BASELINE_KIND not in us:
            return math.nan
        return max(us[kind] - us[BASELINE_KIND], 0.0) / 1000.0

    s2a_kind = next((k for k in SYNC_TO_ASYNC_KINDS if k in us), "")
    return Costs(
        sync_to_async=hop_ms(s2a_kind) if s2a_kind else math.nan,
        sync_to_async_kind=s2a_kind,
        cold=hop_ms(COLD_KIND),
        async_to_sync=hop_ms("async_to_sync"),
        clients={k.removeprefix("client/"): v / 1000.0 for k, v in us.items() if k.startswith("client/")},
        callers=at,
    )


def _query(row: Mapping[str, Any]) -> dict[str, str]:
    query = row.get("query")
    if not isinstance(query, str):
        return {}
    return {k: v[0] for k, v in parse_qs(query).items()}


def upstream_calls(row: Mapping[str, Any]) -> tuple[float, str]:
    """Upstream calls per request: the probe's count, else from the endpoint and its query."""
    counted = _number(row, "upstream_calls")
    if counted >= 0:
        return counted, "probe count"
    endpoint = row.get("endpoint")
    if isinstance(endpoint, str) and endpoint:
        query = _query(row)
        if endpoint == "external":
            return float(query.get("k", DEFAULT_CALLS["external"])), "from the query"
        return float(DEFAULT_CALLS.get(endpoint, 0)), "from the endpoint"
    return math.nan, "no probe count of upstream calls"


def client_kind(row: Mapping[str, Any]) -> str:
    """The client benchmark kind (``httpx-sync``, ``httpx-async``, ``aiohttp``) a cell's calls use."""
    if row.get("variant") not in ASYNC_CLIENT_VARIANTS:
        return "httpx-sync"  # sync code always calls through the pooled httpx.Client
    client = row.get("client")
    if not isinstance(client, str):
        client = _query(row).get("client", "httpx")
    return "aiohttp" if client == "aiohttp" else "httpx-async"


def _crossing_counts(row: Mapping[str, Any]) -> tuple[float, float, bool]:
    """(sync_to_async, async_to_sync, split) per request; NaN when the probe did not count."""
    s2a, a2s = _number(row, "crossings_sync_to_async"), _number(row, "crossings_async_to_sync")
    if s2a >= 0 and a2s >= 0:
        return s2a, a2s, True
    total = _number(row, "crossings")
    return (total, 0.0, False) if total >= 0 else (math.nan, math.nan, False)


def _baseline(empty: pd.DataFrame, row: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The empty-endpoint cell that stands for this cell's server share, and how it matched."""
    if empty.empty:
        return None, ""
    same = empty[empty["role"] == row["role"]]
    # Same server, core budget and middleware stack (a stack's middleware is part of the
    # share); any HTTP client or database, since an empty endpoint calls neither.
    for key in ("server_spec", "cores", "middleware"):
        if key in same.columns and key in row:
            same = same[same[key] == row[key]]
    if same.empty:
        return None, ""
    variant = same[same["variant"] == row["variant"]]
    chosen, how = (variant, "") if not variant.empty else (same, " (other variants)")
    if "concurrency" in chosen.columns and "concurrency" in row:
        at = chosen[chosen["concurrency"] == row["concurrency"]]
        if not at.empty:
            chosen = at
    means = chosen.mean(numeric_only=True).to_dict()
    return {str(k): v for k, v in means.items()}, how


def _count_times_cost(
    component: Component, count: float, cost_ms: float, *, uncounted: str, none: str, unpriced: str, priced: str
) -> tuple[Component, float, str]:
    """A component priced as count per request × cost of one: not measured without a count
    (NaN or negative: the probe did not count) or, when there is something to price, without
    a cost; zero when the count is zero, whatever the cost."""
    if math.isnan(count) or count < 0:
        return component, math.nan, f"{NOT_MEASURED}: {uncounted}"
    if count == 0:
        return component, 0.0, none
    if math.isnan(cost_ms):
        return component, math.nan, f"{NOT_MEASURED}: {unpriced}"
    return component, count * cost_ms, priced


def _components(
    row: Mapping[str, Any], costs: Costs, baseline: dict[str, Any] | None, how: str, connect_ms: float
) -> list[tuple[Component, float, str]]:
    out: list[tuple[Component, float, str]] = []
    server = str(row.get("server_spec", "its server"))
    base_s2a, base_a2s = 0.0, 0.0
    if baseline is None:
        out.append(("server + framework", math.nan, f"{NOT_MEASURED}: no empty-endpoint cell on {server}"))
    else:
        out.append(
            (
                "server + framework",
                _number(baseline, "server_cpu_ms_per_req"),
                f"empty endpoint on {server}{how}",
            )
        )
        base_s2a, base_a2s, _ = _crossing_counts(baseline)
        base_s2a, base_a2s = (0.0, 0.0) if math.isnan(base_s2a) else (base_s2a, base_a2s)

    s2a, a2s, split = _crossing_counts(row)
    if math.isnan(s2a):
        out.append(("crossings", math.nan, f"{NOT_MEASURED}: no probe count of crossings"))
    else:
        s2a, a2s = max(s2a - base_s2a, 0.0), max(a2s - base_a2s, 0.0)
        # A request's first thread-sensitive crossing starts its thread, unless the empty
        # endpoint's own crossings (inside its share) already did.
        cold = 1.0 if s2a >= 1 and base_s2a == 0 and not math.isnan(costs.cold) else 0.0
        parts = [
            (cold, costs.cold, COLD_KIND),
            (s2a - cold, costs.sync_to_async, costs.sync_to_async_kind or "sync_to_async"),
            (a2s, costs.async_to_sync, "async_to_sync"),
        ]
        used = [(n, cost, kind) for n, cost, kind in parts if n > 0]
        if not used:
            out.append(("crossings", 0.0, "no crossings" + (" beyond the empty endpoint's" if baseline else "")))
        elif any(math.isnan(cost) for _, cost, _ in used):
            missing = ", ".join(kind for _, cost, kind in used if math.isnan(cost))
            out.append(("crossings", math.nan, f"{NOT_MEASURED}: no {missing} benchmark in this run"))
        else:
            label = "" if split else " (all costed as sync_to_async: counts not split by direction)"
            terms = " + ".join(f"{n:g} × {cost * 1000:,.0f} µs ({kind} − direct)" for n, cost, kind in used)
            beyond = " beyond the empty endpoint's" if baseline else ""
            out.append(
                (
                    "crossings",
                    sum(n * cost for n, cost, _ in used),
                    f"{terms}{beyond}, {costs.callers} caller{label}",
                )
            )

    calls, where = upstream_calls(row)
    kind = client_kind(row)
    per_call = costs.client(kind)
    out.append(
        _count_times_cost(
            "upstream client",
            calls,
            per_call,
            uncounted=where,
            none="no upstream calls",
            unpriced=f"no client/{kind} benchmark in this run",
            priced=f"{calls:g} call{'' if calls == 1 else 's'} ({where}) × {per_call * 1000:,.0f} µs "
            f"(client/{kind}, {costs.callers} caller, wall incl. the simulator's reply)",
        )
    )
    opened = _number(row, "db_connections_opened")
    out.append(
        _count_times_cost(
            "connections opened",
            opened,
            connect_ms,
            uncounted="no probe count of connections opened",
            none="no connections opened",
            unpriced=f"{opened:g} per request, no connect cost given",
            priced=f"{opened:g} per request × {connect_ms:g} ms connect",
        )
    )

    measured = _number(row, "server_cpu_ms_per_req")
    known = sum(ms for _, ms, _ in out if not math.isnan(ms))
    out.append(("remainder", measured - known, f"measured {measured:,.2f} ms − the components above"))
    return out


def _connect_ms(connect_cost_ms: float | Mapping[str, float] | None, role: str) -> float:
    if connect_cost_ms is None:
        return math.nan
    if isinstance(connect_cost_ms, Mapping):
        return float(connect_cost_ms.get(role, math.nan))
    return float(connect_cost_ms)


def account(
    cells: pd.DataFrame,
    crossings: pd.DataFrame,
    *,
    connect_cost_ms: float | Mapping[str, float] | None = None,
    empty_mix: str = EMPTY_MIX,
    callers: int = 1,
) -> Accounting:
    """Split each HTTP cell's server CPU per request into components (see the module docstring).

    ``cells``: one row per cell and interpreter (``limits.cell_means`` of the HTTP values),
    with REQUIRED_COLUMNS; cells of the mix ``empty_mix`` are the server-share baseline and
    get no rows of their own. ``crossings``: ``report.crossing_table`` of the run (may be
    empty). ``connect_cost_ms``: one connect's cost, or one per role ("gil"/"ft").
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in cells.columns]
    if missing:
        raise LabError(f"accounting: missing columns {', '.join(missing)}; it needs {', '.join(REQUIRED_COLUMNS)}")
    mix = cells["mix"] if "mix" in cells.columns else cells["point"].str.split("@").str[0]
    is_empty = mix == empty_mix
    empty, measured = cells[is_empty], cells[~is_empty & cells["server_cpu_ms_per_req"].notna()]
    keys = [k for k in (*KEY_COLUMNS, *EXTRA_KEY_COLUMNS) if k in cells.columns]
    costs = {role: role_costs(crossings, role, callers) for role in ("gil", "ft")}
    rows: list[dict[str, Any]] = []
    wide: list[dict[str, Any]] = []
    for record in measured.to_dict("records"):
        row = {str(k): v for k, v in record.items()}
        baseline, how = _baseline(empty, row)
        role = str(row["role"])
        cell = {k: row[k] for k in keys}
        parts = _components(row, costs.get(role, Costs()), baseline, how, _connect_ms(connect_cost_ms, role))
        rows += [{**cell, "component": c, "ms_per_request": ms, "source": source} for c, ms, source in parts]
        # The parts (not-measured ones skipped) add up to the measured CPU by construction.
        wide.append({**cell, **{c: ms for c, ms, _ in parts}, "measured": _number(row, "server_cpu_ms_per_req")})
    return Accounting(
        tidy=pd.DataFrame(rows, columns=[*keys, "component", "ms_per_request", "source"]),
        pivot=pd.DataFrame(wide, columns=[*keys, *COMPONENTS, "measured"]),
    )


def _label(row: Mapping[str, Any]) -> str:
    """The point with the dimensions that tell its cells apart: middleware, HTTP client."""
    label = str(row["point"])
    middleware = row.get("middleware")
    if isinstance(middleware, str) and middleware != "default":
        label += f" +{middleware}"
    client = row.get("client")
    return label + (f" [{client}]" if isinstance(client, str) and client else "")


def markdown_lines(result: Accounting) -> list[str]:
    """The pivot as a markdown table (ms per request; "not measured" where a cost is missing)."""
    table = result.pivot
    if table.empty:
        return []
    who = {"gil": "3.13", "ft": "3.13t"}
    lines = [
        "| mix | variant | interpreter | server | measured ms | " + " | ".join(COMPONENTS) + " |",
        "|---|---|---|---|---:|" + "---:|" * len(COMPONENTS),
    ]
    for record in table.to_dict("records"):
        r = {str(k): v for k, v in record.items()}
        cells = [NOT_MEASURED if math.isnan(r[c]) else f"{r[c]:,.2f}" for c in COMPONENTS]
        lines.append(
            f"| {_label(r)} | {r['variant']} | {who.get(str(r['role']), r['role'])} | {r.get('server_spec', '—')} | "
            f"{r['measured']:,.2f} | " + " | ".join(cells) + " |"
        )
    return lines
