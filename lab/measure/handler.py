"""Handler tier: Django's handlers driven in-process by pyperf (no sockets), one cell at a time.

Also runs the pyperf scripts of the crossing tier (``run_pyperf``): both hand pyperf the
same options and the environment variables its workers need.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pyperf

from lab.cells import Cell, CellRecord
from lab.envs import WORKLOADS_DIR, WorkloadEnv
from lab.measure.context import RunContext
from lab.measure.probe import probe_problem
from lab.measure.store import Results
from lab.proc import child_env, run_logged, tail


def run_pyperf(
    ctx: RunContext,
    env: WorkloadEnv,
    script: str,
    args: list[str],
    tag: str,
    vars_: dict[str, str],
    processes: int = 0,
) -> tuple[Path | None, str, float]:
    """Run a pyperf script in the interpreter's environment: (output or None, error, seconds).
    ``processes``: worker processes (0: the plan's handler_processes)."""
    out = ctx.work / "pyperf" / f"{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    plan = ctx.plan
    cmd = [
        str(env.python),
        str(WORKLOADS_DIR / script),
        *args,
        "--processes",
        str(processes or plan.handler_processes),
        "--values",
        str(plan.handler_values),
        "--warmups",
        str(plan.handler_warmups),
        "--min-time",
        str(plan.handler_min_time),
        # pyperf workers get only a few variables; pass what the workload needs explicitly.
        "--inherit-environ",
        ",".join(sorted(vars_)),
        "--quiet",
        "--output",
        str(out),
    ]
    log_path = ctx.logs / f"{tag}.log"
    started = time.monotonic()
    code = run_logged(cmd, log_path=log_path, env=child_env(vars_), cwd=WORKLOADS_DIR, timeout=1800)
    seconds = round(time.monotonic() - started, 2)
    if code != 0 or not out.is_file():
        return None, f"pyperf exited {code}: {tail(log_path, 3)}", seconds
    return out, "", seconds


def run_handler(
    ctx: RunContext, cell: Cell, env: WorkloadEnv, *, count_crossings: bool = False
) -> tuple[CellRecord, tuple[str, pyperf.Benchmark] | None]:
    """One handler-tier cell; with ``count_crossings`` the same cell with the crossing
    counter on, to measure what the counter itself costs."""
    name = env.interpreter.spec_name
    bench_name = cell.bench_name + ("/crossing-counter" if count_crossings else "")
    tag = f"{name}-{bench_name.replace('/', '-')}"
    gil_dir = ctx.gil_dir(tag)
    vars_ = ctx.env_vars(env, gil_dir, cell.middleware, cell.interface)
    if count_crossings:
        vars_["LAB_CROSSINGS"] = "1"
    args = [
        "--variant",
        cell.variant,
        "--endpoint",
        cell.point.endpoint,
        "--query",
        cell.point.query,
        *ctx.request_args(cell.point),
        "--concurrency",
        str(cell.concurrency),
        "--bench-name",
        bench_name,
    ]
    record = CellRecord.of(cell, name, repeat=0)
    record.bench_name = bench_name
    out, error, record.wall_s = run_pyperf(ctx, env, "bench_handler.py", args, tag, vars_)
    if out is None:
        record.status, record.reason = "failed", error
        return record, None
    # pyperf: one manager plus handler_processes workers, each with the GIL probe.
    judged = ctx.judge(env, gil_dir, expected=ctx.plan.handler_processes + 1)
    record.gil = judged.metadata()
    bench = pyperf.Benchmark.load(str(out))
    bench.update_metadata(
        {
            **ctx.common_metadata(env, cell),
            **judged.metadata(),
            "lab_status": judged.status,
            "lab_reason": judged.reason or "-",
        }
    )
    if count_crossings:
        bench.update_metadata({"lab_crossing_counter": 1})
    if judged.status != "ok":
        record.status, record.reason = judged.status, judged.reason
    return record, ("overhead" if count_crossings else "handler", bench)


def run_handler_cells(
    ctx: RunContext, results: Results, cells: list[Cell], on_progress: Callable[[str], None], *, overhead: bool
) -> None:
    """Every handler cell on both interpreters, alternating which goes first; then (with
    ``overhead``) one async cell again with the crossing counter on."""
    for index, cell in enumerate(cells):
        # Alternate which interpreter goes first so slow drift does not favour one side.
        for env in ctx.envs if index % 2 == 0 else list(reversed(ctx.envs)):
            if results.is_done(env.interpreter.spec_name, cell.bench_name):
                continue
            on_progress(f"{cell.bench_name} on {env.interpreter.spec_name}")
            problem = probe_problem(ctx, env, cell)
            if problem:
                record = CellRecord.of(cell, env.interpreter.spec_name, 0)
                record.status, record.reason = "failed", problem
                results.keep(record)
            else:
                record, bench = run_handler(ctx, cell, env)
                results.keep(record, bench=bench)
    candidates = [c for c in cells if c.variant == "async"]
    if not overhead or not candidates:
        return
    cell = min(candidates, key=lambda c: c.concurrency)
    for env in ctx.envs:
        if results.is_done(env.interpreter.spec_name, cell.bench_name + "/crossing-counter"):
            continue
        on_progress(f"{cell.bench_name} with the crossing counter on {env.interpreter.spec_name}")
        record, bench = run_handler(ctx, cell, env, count_crossings=True)
        results.keep(record, bench=bench)
