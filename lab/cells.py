"""The cells of a plan: tier x mix point x variant x concurrency, and their records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lab.gilstate import CellStatus
from lab.spec import Middleware, MixPoint, Plan, Tier, Variant, load_mix

# Which server interface each variant runs under.
VARIANT_INTERFACE: dict[Variant, str] = {
    "sync": "wsgi",
    "async": "asgi",
    "bridged": "asgi",
    "sync-on-asgi": "asgi",
    "async-db": "asgi",
}
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
    "sync_to_async",
    "sync_to_async-ts-off",
    "async_to_sync",
    "executor",
    "client/httpx-sync",
    "client/httpx-async",
    "client/aiohttp",
)
# Seconds a server needs to start and stop, for the duration estimate.
SERVER_OVERHEAD_S = 3.0


@dataclass(frozen=True, kw_only=True)
class Cell:
    tier: Tier
    point: MixPoint
    variant: Variant
    concurrency: int
    middleware: Middleware = "default"

    @property
    def bench_name(self) -> str:
        suffix = "" if self.middleware == "default" else f"/mw={self.middleware}"
        return f"{self.tier}/{self.point.label}/{self.variant}/c{self.concurrency}{suffix}"

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
            bench_name=cell.bench_name,
        )


def points_of(plan: Plan, mixes: tuple[str, ...]) -> list[MixPoint]:
    points: list[MixPoint] = []
    for name in mixes:
        points.extend(load_mix(name).points(plan.sweep_values))
    return points


def cells_of(plan: Plan, only_mixes: tuple[str, ...] | None = None) -> list[Cell]:
    def chosen(mixes: tuple[str, ...]) -> tuple[str, ...]:
        return mixes if only_mixes is None else tuple(m for m in mixes if m in only_mixes)

    cells: list[Cell] = []
    for tier in plan.tiers:
        levels = plan.handler_concurrency if tier == "handler" else plan.http_concurrency
        mixes = chosen(plan.handler_mixes if tier == "handler" else plan.mixes)
        cells.extend(
            Cell(tier=tier, point=p, variant=v, concurrency=c, middleware=m)
            for p in points_of(plan, mixes)
            for m in plan.middleware
            for v in plan.variants
            for c in levels
        )
    return cells


def estimate_seconds(plan: Plan, cells: list[Cell], interpreters: int, *, with_crossings: bool = True) -> float:
    """Rough wall time, printed before the run starts."""
    # pyperf: calibration plus (warmups + values) x min_time per worker, ~1 s start-up each.
    per_proc = 1.0 + (plan.handler_warmups + plan.handler_values + 2) * plan.handler_min_time
    pyperf_seconds = plan.handler_processes * per_proc + 2.0
    # Every crossing/client kind at every caller count, plus the crossing-counter overhead cell.
    crossing_runs = (len(CROSSING_KINDS) * len(plan.crossing_concurrency) + 1) if with_crossings else 0
    total = interpreters * pyperf_seconds * crossing_runs
    for cell in cells:
        if cell.tier == "handler":
            total += interpreters * pyperf_seconds
        else:
            total += interpreters * plan.repeats * (plan.http_warmup + plan.http_duration + 0.3)
    # One server start/stop per interpreter, interface, middleware stack and repeat.
    total += interpreters * plan.repeats * 2 * len(plan.middleware) * SERVER_OVERHEAD_S
    return total
