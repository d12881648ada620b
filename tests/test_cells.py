from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from lab.cells import VARIANT_INTERFACE, VARIANT_VIEW, Cell, cells_of, estimate_seconds, stagger_of
from lab.spec import VARIANTS, load_mix, load_plan

WORKLOADS = Path(__file__).resolve().parent.parent / "workloads"


def test_lab_and_workloads_agree_on_variants() -> None:
    # The workloads cannot import the lab (and the lab cannot import Django): one table each,
    # checked here so they never drift.
    sys.path.insert(0, str(WORKLOADS))
    try:
        from labsite import inprocess  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(WORKLOADS))
    assert set(inprocess.VARIANTS) == set(VARIANTS)
    for variant, (interface, view) in inprocess.VARIANTS.items():
        assert (VARIANT_INTERFACE[variant], VARIANT_VIEW[variant]) == (interface, view)


def test_cell_paths_and_names() -> None:
    point = load_mix("io-sweep").points((20,))[0]
    cell = Cell(tier="http", point=point, variant="sync-on-asgi", concurrency=32)
    assert cell.path == "/billing/sync/?latency=20"
    assert cell.interface == "asgi"
    assert cell.bench_name == "http/io-sweep@latency=20/sync-on-asgi/c32"
    audited = Cell(tier="http", point=point, variant="async", concurrency=8, middleware="sync-audit")
    assert audited.bench_name == "http/io-sweep@latency=20/async/c8/mw=sync-audit"


def test_plan_cells_and_estimate() -> None:
    plan = load_plan("smoke")
    cells = cells_of(plan)
    assert {c.tier for c in cells} == {"handler", "http"}
    assert len(cells) == 1 * 3 * 1 + 2 * 3 * 1  # handler: 1 mix; http: 2 mixes; 3 variants each
    assert [c.point.mix for c in cells_of(plan, ("billing",))] == ["billing"] * 3
    assert estimate_seconds(plan, cells, 2) > estimate_seconds(plan, cells, 2, with_crossings=False) > 0


def test_plans_spread_each_closed_loop_cell_over_one_wait_of_its_point_unless_told_not_to() -> None:
    plan = load_plan("async-pays")
    assert plan.http_stagger  # the default: a plan that says nothing is staggered
    cells = cells_of(plan)
    waits = {c.point.label: stagger_of(plan.http_stagger, c) for c in cells}
    # 5 events 100 ms apart; a 1 s hold; fan-outs of 50 ms calls, made at once.
    assert (waits["stream"], waits["long-poll"], waits["io-fanout-k@k=16"]) == (0.5, 1.0, 0.05)
    # Not staggered: a plan that says so, an open-loop cell, a point with no wait.
    assert stagger_of(False, cells[0]) == 0.0
    assert stagger_of(True, dataclasses.replace(cells[0], rate_fraction=0.5)) == 0.0
    cpu = Cell(tier="http", point=load_mix("cpu-heavy").points(())[0], variant="sync", concurrency=8)
    assert stagger_of(True, cpu) == 0.0
    # The estimate counts the stagger in every round, on both interpreters.
    together = dataclasses.replace(plan, http_stagger=False)
    spread_s = 2 * plan.repeats * sum(waits[c.point.label] for c in cells)
    assert estimate_seconds(plan, cells, 2) == pytest.approx(estimate_seconds(together, cells, 2) + spread_s)


def test_helpers_get_their_own_cpus_only_on_a_machine_with_four_or_more() -> None:
    from lab.cells import default_core_budgets

    assert default_core_budgets(2) == (0,)
    assert default_core_budgets(3) == (0,)
    assert default_core_budgets(4) == (2,)
    assert default_core_budgets(16) == (14,)


def test_per_call_costs_at_one_caller_and_contention_at_more() -> None:
    from lab.cells import CROSSING_KINDS, crossing_cells

    cells = crossing_cells((1, 4))
    assert ("direct", 1) in cells and ("direct", 4) not in cells
    assert ("sync_to_async", 1) in cells and ("sync_to_async", 4) in cells
    assert ("sync_to_async-ts-off", 4) in cells and ("sync_to_async-ts-off", 1) not in cells
    assert {k for k, c in cells if c == 4} >= {k for k in CROSSING_KINDS if "gather" in k}
    assert all(c == 4 for k, c in cells if "gather" in k)
    assert crossing_cells((2,)) == [(k, 2) for k in CROSSING_KINDS]
    assert crossing_cells(()) == []
