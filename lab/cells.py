"""The cells of a plan: tier x mix point x variant x concurrency, and their records."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from lab.gilstate import CellStatus
from lab.servers import ServerConfig
from lab.spec import VARIANT_INTERFACE, Middleware, MixPoint, Plan, Tier, Variant, load_mix

__all__ = ["VARIANT_INTERFACE", "Cell", "CellRecord", "cells_of", "estimate_seconds"]
VARIANT_VIEW: dict[Variant, str] = {
    "sync": "sync",
    "async": "async",
    "bridged": "bridged",
    "sync-on-asgi": "sync",
    "async-db": "asyncdb",
}
# The kinds workloads/bench_crossings.py measures, then the HTTP client kinds
# workloads/bench_clients.py measures (one call to the upstream simulator at 0 ms).
CROSSING_KINDS = (
    "direct",
    "sync_to_async",  # global executor (no request context)
    "sync_to_async-ts-off",  # global: the loop's default pool
    "sync_to_async-request",  # in a request's ThreadSensitiveContext, warm thread
    "sync_to_async-cold",  # a fresh ThreadSensitiveContext per call (a request's first hop)
    "async_to_sync",
    "executor",
    "request-gather-ts-on-py",
    "request-gather-ts-off-py",
    "request-gather-ts-on-release",
    "request-gather-ts-off-release",
    "client/httpx-sync",
    "client/httpx-async",
    "client/aiohttp",
)


def crossing_cells(concurrency: tuple[int, ...]) -> list[tuple[str, int]]:
    """(kind, callers) the crossing tier measures: per-call costs at the lowest caller count
    only; the contention kinds (thread_sensitive on/off, a request gathering N helpers) at
    every higher count, where serialisation can show (a gather of one helper cannot)."""
    if not concurrency:
        return []
    lowest = min(concurrency)
    contention = ("sync_to_async", "sync_to_async-ts-off")
    out: list[tuple[str, int]] = []
    for kind in CROSSING_KINDS:
        gather = "gather" in kind
        for callers in concurrency:
            if len(concurrency) == 1:  # one caller count: every kind at it
                out.append((kind, callers))
                continue
            at_lowest = callers == lowest and not gather and kind != "sync_to_async-ts-off"
            contended = callers > lowest and (gather or kind in contention)
            if at_lowest or contended:
                out.append((kind, callers))
    return out


# Seconds a server needs to start and stop, for the duration estimate.
SERVER_OVERHEAD_S = 4.0
SERVER_STOP_S = 0.5


@dataclass(frozen=True, kw_only=True)
class Cell:
    tier: Tier
    point: MixPoint
    variant: Variant
    concurrency: int
    middleware: Middleware = "default"
    # HTTP tier only: the server, the core budget (0: all CPUs shared) and, for open-loop
    # cells, the offered rate as a fraction of the measured saturation throughput.
    server: ServerConfig | None = None
    cores: int = 0
    rate_fraction: float = 0.0

    @property
    def open_loop(self) -> bool:
        return self.rate_fraction > 0

    @property
    def bench_name(self) -> str:
        parts = [self.tier, self.point.label, self.variant, f"c{self.concurrency}"]
        if self.server is not None:
            parts.append(self.server.spec)
        if self.cores:
            parts.append(f"cores={self.cores}")
        if self.open_loop:
            parts.append(f"open={self.rate_fraction:g}")
        if self.middleware != "default":
            parts.append(f"mw={self.middleware}")
        return "/".join(parts)

    @property
    def interface(self) -> str:
        return VARIANT_INTERFACE[self.variant]

    @property
    def path(self) -> str:
        query = self.point.query
        return f"/{self.point.endpoint}/{VARIANT_VIEW[self.variant]}/" + (f"?{query}" if query else "")


@dataclass(kw_only=True)
class CellRecord:
    interpreter: str
    tier: str
    mix: str
    point: str
    variant: str
    concurrency: int
    repeat: int
    status: CellStatus
    middleware: str = "default"
    server: str = "-"
    cores: int = 0
    rate_fraction: float = 0.0
    reason: str = ""
    bench_name: str = ""
    wall_s: float = 0.0
    gil: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, cell: Cell, interpreter: str, repeat: int) -> CellRecord:
        return cls(
            interpreter=interpreter,
            tier=cell.tier,
            mix=cell.point.mix,
            point=cell.point.label,
            variant=cell.variant,
            concurrency=cell.concurrency,
            repeat=repeat,
            status="ok",
            middleware=cell.middleware,
            server=cell.server.spec if cell.server else "-",
            cores=cell.cores,
            rate_fraction=cell.rate_fraction,
            bench_name=cell.bench_name,
        )


def points_of(plan: Plan, mixes: tuple[str, ...]) -> list[MixPoint]:
    overrides = dict(plan.sweep_overrides)
    points: list[MixPoint] = []
    for name in mixes:
        points.extend(load_mix(name).points(overrides.get(name, plan.sweep_values)))
    return points


def variants_of(plan: Plan, mix: str) -> tuple[Variant, ...]:
    """The plan's variants for one mix (``mix_variants`` may narrow them)."""
    return dict(plan.mix_variants).get(mix, plan.variants)


# Below this many CPUs the server shares them with the load generator and upstream.
SEPARATE_HELPERS_FROM = 4
HELPER_CPUS = 2


def default_core_budgets(cpus: int | None = None) -> tuple[int, ...]:
    """The core budget when the plan names none: on a machine with at least 4 CPUs the server
    runs alone on all but two, the load generator and upstream on those two (helpers on the
    server's cores take CPU that 3.13t could use and 3.13 cannot, biasing the ratio); on a
    smaller machine a 1-core server could not show free-threading at all, so they share (0)."""
    cpus = len(os.sched_getaffinity(0)) if cpus is None else cpus
    return (cpus - HELPER_CPUS,) if cpus >= SEPARATE_HELPERS_FROM else (0,)


def cells_of(plan: Plan, only_mixes: tuple[str, ...] | None = None) -> list[Cell]:
    """Handler cells, then closed-loop HTTP cells, then open-loop HTTP cells."""

    def chosen(mixes: tuple[str, ...]) -> tuple[str, ...]:
        return mixes if only_mixes is None else tuple(m for m in mixes if m in only_mixes)

    cells: list[Cell] = []
    if "handler" in plan.tiers:
        cells.extend(
            Cell(tier="handler", point=p, variant=v, concurrency=c, middleware=m)
            for p in points_of(plan, chosen(plan.handler_mixes))
            for m in plan.middleware  # mix_middleware is for HTTP cells
            for v in variants_of(plan, p.mix)
            for c in plan.handler_concurrency
        )
    if "http" in plan.tiers:
        points = points_of(plan, chosen(plan.mixes))
        shapes = [
            (p, m, v, s, cores)
            for cores in plan.core_budgets or default_core_budgets()
            for p in points
            for m in dict(plan.mix_middleware).get(p.mix, plan.middleware)
            for v in variants_of(plan, p.mix)
            for s in plan.servers
            if s.interface == VARIANT_INTERFACE[v]
        ]
        cells.extend(
            Cell(tier="http", point=p, variant=v, concurrency=c, middleware=m, server=s, cores=cores)
            for p, m, v, s, cores in shapes
            for c in dict(plan.mix_concurrency).get(p.mix, plan.http_concurrency)
        )
        # Open loop: as many connections as the largest closed-loop level, so the
        # generator never runs out of connections below saturation.
        cells.extend(
            Cell(
                tier="http",
                point=p,
                variant=v,
                concurrency=max(dict(plan.mix_concurrency).get(p.mix, plan.http_concurrency)),
                middleware=m,
                server=s,
                cores=cores,
                rate_fraction=f,
            )
            for p, m, v, s, cores in shapes
            for f in plan.open_loop_fractions
        )
    return cells


SLICE_OVERHEAD_S = 1.0

# A slice's first round meets a cold server: every thread builds its upstream client on its
# first call (an httpx.Client costs ~30 ms of CPU here; 32 built at once took 1.0 s on 2 cores,
# on 3.13 and 3.13t alike), Django and the pools warm up. Before this allowance, the first
# round served under 80% of the later rounds' median in 22-38% of cells (runs 2026-12-01-
# quick-d, -axes-d), and some served nothing ("no request completed in the window"). So the
# first round warms up for at least this base plus this much per connection.
COLD_WARMUP_S = 1.0
COLD_WARMUP_PER_CONNECTION_S = 0.05


# Warm-up per slice: at least this many p50s, so every connection sends a few requests first.
WARMUP_P50S = 3.0
MAX_WARMUP_S = 5.0


def cold_warmup_s(connections: int) -> float:
    """Warm-up a slice's first round needs at least, for its connection count."""
    return COLD_WARMUP_S + COLD_WARMUP_PER_CONNECTION_S * connections


def slice_window(
    min_warmup: float,
    min_duration: float,
    max_duration: float,
    min_requests: int,
    rps: float,
    p50_s: float,
    cold_connections: int = 0,
) -> tuple[float, float]:
    """(warm-up, duration): several p50s of warm-up; long enough for ``min_requests`` at ``rps``.
    ``cold_connections``: the slice's first round on a cold server with that many connections
    (0: a warm one), which warms up for at least ``cold_warmup_s`` of them."""
    warmup = max(min_warmup, min(MAX_WARMUP_S, WARMUP_P50S * p50_s))
    if cold_connections:
        warmup = max(warmup, cold_warmup_s(cold_connections))
    duration = min_duration
    if min_requests and rps > 0:
        duration = min(max_duration, max(min_duration, min_requests / rps))
    return warmup, duration


def plan_window(plan: Plan, rps: float, p50_s: float, cold_connections: int = 0) -> tuple[float, float]:
    """``slice_window`` with ``plan``'s warm-up, durations and request target."""
    return slice_window(
        plan.http_warmup,
        plan.http_duration,
        plan.http_max_duration,
        plan.http_min_requests,
        rps,
        p50_s,
        cold_connections,
    )


def stagger_of(stagger: bool, cell: Cell) -> float:
    """Seconds a closed-loop cell's connections take to start under ``plan.http_stagger``: one
    nominal wait of its point (0: not staggered, an open-loop cell, or a point with no wait)."""
    if not stagger or cell.open_loop or not cell.point.nominal_wait_ms > 0:
        return 0.0
    return cell.point.nominal_wait_ms / 1000


def estimate_seconds(plan: Plan, cells: list[Cell], interpreters: int, *, with_crossings: bool = True) -> float:
    """Rough wall time, printed before the run starts."""
    # pyperf: per worker process, start-up (~0.35 s measured for the crossing scripts) plus
    # calibration, warm-ups and values of min_time each.
    per_proc = 0.35 + (plan.handler_warmups + plan.handler_values + 1) * plan.handler_min_time
    pyperf_seconds = plan.handler_processes * per_proc + 0.5
    crossing_seconds = (plan.crossing_processes or plan.handler_processes) * per_proc + 0.5
    # Every crossing/client kind at the caller counts it needs, plus the crossing-counter
    # overhead cell (a handler cell).
    total = 0.0
    if with_crossings and plan.crossing_concurrency:
        total += interpreters * (crossing_seconds * len(crossing_cells(plan.crossing_concurrency)) + pyperf_seconds)
    points: set[tuple[str, str, int, float]] = set()
    for cell in cells:
        if cell.tier == "handler":
            total += interpreters * pyperf_seconds
            continue
        # A slice per round: warm-up of a few p50s, then long enough for http_min_requests
        # at the rate Little's law gives with every connection waiting upstream, capped at
        # the ~150 req/s a Django cell serves on 2 cores (CPU-bound cells are slower than
        # Little's law, so their windows are longer). SLICE_OVERHEAD_S: generator start-up,
        # samplers and the server settling, measured on the 2-core VM (3.1 s per slice real
        # against 1.5 s estimated before it was counted).
        wait_s = cell.point.nominal_wait_ms / 1000 + 0.01
        rps = min(cell.concurrency / wait_s, 150.0)
        warmup, duration = plan_window(plan, rps, wait_s)
        cold_warmup, _ = plan_window(plan, rps, wait_s, cell.concurrency)
        # Every round, plus the first round's longer warm-up on a cold server.
        stagger = stagger_of(plan.http_stagger, cell)
        total += interpreters * (plan.repeats * (stagger + warmup + duration + SLICE_OVERHEAD_S) + cold_warmup - warmup)
        points.add((cell.point.label, cell.middleware, cell.cores, cell.rate_fraction))
    # Each mix point starts its servers (one per interpreter and server shape) together:
    # they boot in parallel, stop one after the other.
    total += len(points) * (SERVER_OVERHEAD_S + interpreters * len(plan.servers) * SERVER_STOP_S)
    return total
