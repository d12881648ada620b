"""Crossing tier: the sync<->async hop and HTTP client microbenchmarks (pyperf), per interpreter."""

from __future__ import annotations

from collections.abc import Callable

import pyperf

from lab import FORMAT_VERSION
from lab.cells import CellRecord, crossing_cells
from lab.envs import WorkloadEnv
from lab.measure.context import RunContext
from lab.measure.handler import run_pyperf
from lab.measure.store import Results
from lab.provenance import interpreter_metadata


def run_crossing(
    ctx: RunContext, env: WorkloadEnv, kind: str, concurrency: int
) -> tuple[CellRecord, tuple[str, pyperf.Benchmark] | None]:
    name = env.interpreter.spec_name
    bench_name = f"crossing/{kind}/c{concurrency}"
    tag = f"{name}-{bench_name.replace('/', '-')}"
    gil_dir = ctx.gil_dir(tag)
    record = CellRecord(
        interpreter=name,
        tier="crossing",
        mix="-",
        point=kind,
        variant="-",
        concurrency=concurrency,
        repeat=0,
        status="ok",
        bench_name=bench_name,
    )
    client = kind.removeprefix("client/")
    script = "bench_clients.py" if client != kind else "bench_crossings.py"
    args = ["--kind", client, "--concurrency", str(concurrency), "--bench-name", bench_name]
    processes = ctx.plan.crossing_processes or ctx.plan.handler_processes
    out, error, record.wall_s = run_pyperf(ctx, env, script, args, tag, ctx.env_vars(env, gil_dir), processes)
    if out is None:
        record.status, record.reason = "failed", error
        return record, None
    judged = ctx.judge(env, gil_dir, expected=processes + 1)
    record.gil = judged.metadata()
    record.status, record.reason = judged.status, judged.reason
    bench = pyperf.Benchmark.load(str(out))
    bench.update_metadata(
        {
            **interpreter_metadata(env),
            **judged.metadata(),
            "lab_tier": "crossing",
            "lab_crossing_kind": kind,
            "lab_concurrency": concurrency,
            "lab_status": judged.status,
            "lab_reason": judged.reason or "-",
            "lab_format_version": FORMAT_VERSION,
        }
    )
    return record, ("crossings", bench)


def run_crossing_cells(
    ctx: RunContext, results: Results, concurrency: tuple[int, ...], on_progress: Callable[[str], None]
) -> None:
    """Every kind at every caller count, alternating which interpreter goes first."""
    for index, (kind, callers) in enumerate(crossing_cells(concurrency)):
        for env in ctx.envs if index % 2 == 0 else list(reversed(ctx.envs)):
            if results.is_done(env.interpreter.spec_name, f"crossing/{kind}/c{callers}"):
                continue
            on_progress(f"crossing/{kind}/c{callers} on {env.interpreter.spec_name}")
            record, bench = run_crossing(ctx, env, kind, callers)
            results.keep(record, bench=bench)
