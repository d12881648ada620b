"""Scheduling: which cells run, in which order, and what a resumed run can skip.

Order: probe every point on both interpreters (bodies must match before anything is
measured), the handler tier, the crossing microbenchmarks, closed-loop HTTP points, then
open-loop HTTP points (their rates come from the closed-loop curves). Each tier module
turns cells into records through ``Results.keep``; this module only decides the order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from lab.cells import Cell, CellRecord, crossing_cells
from lab.measure.context import RunContext
from lab.measure.crossings import run_crossing_cells
from lab.measure.handler import run_handler_cells
from lab.measure.http import run_http_cells
from lab.measure.openloop import choose_open_rates
from lab.measure.probe import probe
from lab.measure.store import Results

log = logging.getLogger("lab.measure")


def runnable_cells(ctx: RunContext, cells: list[Cell], results: Results) -> list[Cell]:
    """Cells this configuration can run; the others are recorded as skipped with the reason."""
    runnable: list[Cell] = []
    for cell in cells:
        reason = ctx.skip_reason(cell)
        if not reason:
            runnable.append(cell)
            continue
        for env in ctx.envs:
            record = CellRecord.of(cell, env.interpreter.spec_name, 0)
            record.status, record.reason = "skipped", reason
            results.records.append(record)
    return runnable


def total_steps(ctx: RunContext, cells: list[Cell], crossing_concurrency: tuple[int, ...], done: int) -> int:
    """Progress steps: one per probe, handler cell, HTTP slice and crossing kind, per interpreter."""
    cells = [c for c in cells if not ctx.skip_reason(c)]
    probes = len({(c.point.label, c.middleware) for c in cells})
    per_cell = [1 if c.tier == "handler" else ctx.plan.repeats for c in cells]
    crossings = len(crossing_cells(crossing_concurrency))
    if crossing_concurrency and any(c.tier == "handler" and c.variant == "async" for c in cells):
        crossings += 1  # the crossing-counter overhead cell
    return len(ctx.envs) * (probes + sum(per_cell) + crossings) - done


def run_plan(
    ctx: RunContext,
    results: Results,
    cells: list[Cell],
    crossing_concurrency: tuple[int, ...],
    on_progress: Callable[[str], None],
) -> list[CellRecord]:
    runnable = runnable_cells(ctx, cells, results)
    variants = tuple(dict.fromkeys(c.variant for c in runnable))
    if results.done:
        log.info("resuming: %d cells were finished earlier and are kept", len(results.done))
    with ctx.services_running(runnable, with_clients=bool(crossing_concurrency)):
        ctx.seed()
        to_probe = {(c.point.label, c.middleware): c for c in runnable}
        for env in ctx.envs:
            for cell in to_probe.values():
                on_progress(f"probing {cell.point.label} ({cell.middleware}) on {env.interpreter.spec_name}")
                ctx.probes[ctx.probe_key(env, cell)] = probe(ctx, env, cell.point, cell.middleware, variants)
        handler = [c for c in runnable if c.tier == "handler"]
        run_handler_cells(ctx, results, handler, on_progress, overhead=bool(crossing_concurrency))
        run_crossing_cells(ctx, results, crossing_concurrency, on_progress)
        http = [c for c in runnable if c.tier == "http"]
        run_http_cells(ctx, results, [c for c in http if not c.open_loop], on_progress)
        open_cells = [c for c in http if c.open_loop]
        if open_cells:
            gil = ctx.envs[0].interpreter.spec_name
            rates, problems = choose_open_rates(results, open_cells, variants, gil, ctx.plan.slo_ms)
            run_http_cells(ctx, results, open_cells, on_progress, rates, problems)
    return results.records
