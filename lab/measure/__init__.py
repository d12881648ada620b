"""Measure stage: run a plan's cells on both interpreters and write raw pyperf JSON.

Hands on ``<run>/raw/<interpreter>.json`` (one pyperf suite per interpreter, readable by
``python -m pyperf compare_to``), ``<run>/raw/histograms/`` (HDR latency histograms)
and ``<run>/cells.json`` (every cell's status, including failed and invalid ones, which
cannot be pyperf benchmarks when they have no values). The reporter reads only these.

The stage reads top-down, one module per step:

- ``schedule``: which cells run and in which order (probe, handler, crossings, HTTP,
  open loop); resume comes from ``store``'s journal;
- ``context``: what the tiers share (plan, environments, services, metadata);
- ``probe``: bodies and work per request checked equal before measuring;
- ``handler``, ``crossings``, ``http``: one tier each, cells in, records out;
- ``openloop``: offered rates from the closed-loop curves; ``layout``: CPU pinning;
- ``store``: the records, the journal and the files written at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.cache import LOCMEM, CacheChoice
from lab.cells import CellRecord, cells_of
from lab.database import DatabaseChoice
from lab.envs import WorkloadEnv
from lab.measure.context import SAME_STACK_ENV, RunContext, one_line_metadata
from lab.measure.http import judge_load
from lab.measure.layout import check_core_budgets, cpu_layout, layout_label
from lab.measure.noise import machine_noise, noise_summary
from lab.measure.schedule import run_plan, total_steps
from lab.measure.store import Results
from lab.spec import Plan

__all__ = [
    "SAME_STACK_ENV",
    "Runner",
    "check_core_budgets",
    "cpu_layout",
    "judge_load",
    "layout_label",
    "one_line_metadata",
]


class Runner:
    """One run directory: the context, the results so far, and the plan's cells."""

    def __init__(
        self,
        plan: Plan,
        envs: list[WorkloadEnv],
        stage_dir: Path,
        *,
        port: int | None,
        database: DatabaseChoice,
        cache: CacheChoice = LOCMEM,
        django: str = "6.1",
        only_mixes: tuple[str, ...] | None = None,
        fingerprint: dict[str, Any] | None = None,
        db_pool: bool = False,
    ) -> None:
        check_core_budgets(plan.core_budgets)
        self.ctx = RunContext(
            plan=plan,
            envs=envs,
            stage=stage_dir,
            database=database,
            cache=cache,
            django=django,
            port=port,
            db_pool=db_pool,
        )
        self.results = Results.open(stage_dir, fingerprint or {})
        self.cells = cells_of(plan, only_mixes)
        # The crossing microbenchmarks belong to no mix: a run limited to some mixes skips them.
        self.crossing_concurrency = () if only_mixes else plan.crossing_concurrency
        self.on_progress: Callable[[str], None] = lambda _msg: None

    @property
    def work(self) -> Path:
        return self.ctx.work

    def total_steps(self) -> int:
        return total_steps(self.ctx, self.cells, self.crossing_concurrency, len(self.results.done))

    def check_noise(self) -> tuple[str, bool]:
        """Record the machine's noise before measuring: (one-line summary, busy?)."""
        self.ctx.noise = machine_noise()
        return noise_summary(self.ctx.noise)

    def run(self) -> list[CellRecord]:
        return run_plan(self.ctx, self.results, self.cells, self.crossing_concurrency, self.on_progress)

    def write(self, plan_path_note: str) -> None:
        self.results.write(self.ctx, plan_path_note)
