from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from lab.cells import Cell
from lab.gilstate import verdict
from lab.measure import http, judge_load
from lab.spec import Plan


def test_error_samples_with_newlines_become_valid_pyperf_metadata() -> None:
    import pyperf

    from lab.measure import one_line_metadata

    md = one_line_metadata({"name": "x", "load_error_samples": "TimeoutError | server log: a\nb\nc", "n": 3})
    assert md["load_error_samples"] == "TimeoutError | server log: a | b | c" and md["n"] == 3
    pyperf.Run([0.1], metadata=md, collect_metadata=False)  # raised ValueError before


def load_md(**kw: Any) -> dict[str, Any]:
    return {"load_ok": 100, "load_errors": 0, "load_requests": 100, "load_error_samples": "-", "load_busy": 0.1, **kw}


def test_a_saturated_load_generator_invalidates_the_cell() -> None:
    ok = verdict([{"gil_enabled_at_end": False, "gil_enabled_at_start": False}], free_threaded=True)
    assert judge_load(load_md(), ok) == ("ok", "")
    status, reason = judge_load(load_md(load_busy=0.95), ok)
    assert status == "invalid" and reason == "load generator saturated: busy 95% of the cell's wall time"
    status, reason = judge_load(load_md(load_errors=2), ok)
    assert status == "failed" and reason.startswith("2 of 100 requests failed")
    assert judge_load(load_md(load_ok=0, load_requests=0), ok) == ("failed", "no request completed in the window")


def test_a_slice_window_is_sized_by_samples_within_its_bounds() -> None:
    from lab.cells import slice_window

    # 300 requests at 100 req/s: 3 s, inside [1, 4]; warm-up three p50s of 50 ms.
    warmup, duration = slice_window(0.2, 1.0, 4.0, 300, 100.0, 0.05)
    assert warmup == pytest.approx(0.2) and duration == pytest.approx(3.0)
    # A slow cell is capped at the maximum; its warm-up at several p50s (capped at 5 s).
    warmup, duration = slice_window(0.2, 1.0, 4.0, 300, 16.0, 0.5)
    assert duration == 4.0 and warmup == pytest.approx(1.5)
    assert slice_window(0.2, 1.0, 4.0, 300, 10_000.0, 0.001)[1] == 1.0
    # No sample target: every slice lasts the plan's duration.
    assert slice_window(0.5, 2.0, 2.0, 0, 50.0, 0.01) == (0.5, 2.0)


def test_a_slices_first_round_warms_up_a_cold_server_and_later_rounds_do_not() -> None:
    import types

    from lab.cells import cells_of, cold_warmup_s
    from lab.measure import http
    from lab.spec import load_plan

    plan = load_plan("quick")
    cell = next(c for c in cells_of(plan) if c.tier == "http" and c.point.nominal_wait_ms == 100)
    run = object.__new__(http.PointRun)
    run.ctx = types.SimpleNamespace(plan=plan)  # type: ignore[assignment]
    run.last = {}
    s = http.Slice(env=None, cell=cell, config=cell.server)  # type: ignore[arg-type]
    # 32 connections, 100 ms upstream: three p50s would be 0.33 s; a cold server gets 2.6 s.
    cold, _ = run.window(s)
    assert cold == pytest.approx(cold_warmup_s(32)) == pytest.approx(2.6)
    run.last[id(s)] = (250.0, 0.12)
    warm, duration = run.window(s)
    assert warm == pytest.approx(0.36) and duration == pytest.approx(0.8)


def test_cells_of_one_point_are_measured_together() -> None:
    from lab.cells import cells_of
    from lab.measure.http import point_groups
    from lab.spec import load_plan

    plan = load_plan("smoke")
    http = [c for c in cells_of(plan) if c.tier == "http"]
    groups = point_groups(http)
    assert {key[2] for key in groups} == {"template-page", "billing"}
    for cells in groups.values():
        assert {c.variant for c in cells} == set(plan.variants)
        assert len({c.point.label for c in cells}) == 1


def test_the_noise_summary_names_busy_processes() -> None:
    from lab.measure.noise import noise_summary

    quiet = {"loadavg": [0.1, 0.1, 0.1], "busy_processes": []}
    text, busy = noise_summary(quiet)
    assert not busy and "other busy processes: none" in text
    after_a_build = {"loadavg": [1.5, 1.0, 1.0], "busy_processes": []}
    assert not noise_summary(after_a_build)[1]
    loud = {"loadavg": [3.0, 1.0, 1.0], "busy_processes": [{"pid": 7, "name": "cc1", "cpu_share": 0.93}]}
    text, busy = noise_summary(loud)
    assert busy and "cc1 (pid 7, 93%)" in text


def test_the_cpu_steadiness_is_measured_and_summarised() -> None:
    from lab.measure.noise import cpu_steadiness, noise_summary

    steady = cpu_steadiness(windows=4, window_s=0.005)
    assert steady["windows"] == 4 and steady["cv"] >= 0 and 0 < steady["slowest_over_median"] <= 1
    text, _ = noise_summary({"loadavg": [0.1, 0.1, 0.1], "busy_processes": [], "cpu_steadiness": steady})
    assert "CPU speed varied" in text and "4 windows of 0.005 s" in text


def test_a_cell_is_noisy_when_its_paired_ratios_disagree_not_when_the_machine_drifts() -> None:
    from lab.cells import CellRecord, cells_of
    from lab.measure.http import Slice, noisy_cells
    from lab.spec import load_plan

    steady, shaky = [c for c in cells_of(load_plan("smoke")) if c.tier == "http"][:2]

    def side(cell: Any, values: list[float]) -> Slice:
        s = Slice(env=None, cell=cell, config=cell.server)  # type: ignore[arg-type]
        s.measured = [(CellRecord.of(cell, "x", r), {"_throughput": v}) for r, v in enumerate(values)]
        return s

    # The machine drifts 2x across rounds, but 3.13t/3.13 stays 0.8 in every round: not noisy.
    drift = [100.0, 200.0, 150.0, 120.0, 180.0]
    slices = [side(steady, drift), side(steady, [0.8 * v for v in drift])]
    # The other cell's ratio jumps between 0.6 and 1.0 from round to round: noisy.
    slices += [side(shaky, [100.0] * 5), side(shaky, [60.0, 100.0, 60.0, 100.0, 60.0])]
    noisy = noisy_cells(slices)
    assert list(noisy) == [shaky]
    assert noisy[shaky] > 0.10


def _point_run(
    monkeypatch: pytest.MonkeyPatch, plan: Plan, cell: Cell, interpreter: str
) -> tuple[http.PointRun, list[str]]:
    """A PointRun of one slice (``cell`` on ``interpreter``) with nothing started: the caller
    replaces ``load`` and ``metadata``; the progress lines it reports are the list returned."""
    import types

    run = object.__new__(http.PointRun)
    env = types.SimpleNamespace(interpreter=types.SimpleNamespace(spec_name=interpreter))
    run.ctx = types.SimpleNamespace(plan=plan)  # type: ignore[assignment]
    run.point, run.cores, run.middleware = cell.point, cell.cores, cell.middleware
    run.server_cpus, run.helper_cpus = None, None
    run.slices = [http.Slice(env=env, cell=cell, config=cell.server)]  # type: ignore[arg-type]
    run.results = types.SimpleNamespace(is_done=lambda *_: False)  # type: ignore[assignment]
    run.open_rates, run.open_problems, run.last = {}, {}, {}
    steps: list[str] = []
    run.on_progress = steps.append
    monkeypatch.setattr(http, "probe_problem", lambda *_: "")
    monkeypatch.setattr(http, "layout_label", lambda *_: "shared")
    return run, steps


def test_a_point_measured_again_keeps_its_first_rounds_and_adds_as_many(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from lab.cells import cells_of
    from lab.spec import load_plan

    plan = load_plan("smoke")
    cell = next(c for c in cells_of(plan) if c.tier == "http")
    run, steps = _point_run(monkeypatch, dataclasses.replace(plan, repeats=3), cell, "cpython-3.13")
    load = {"throughput_rps": 100.0, "latency_us": {"p50": 1000}, "requests": 80}
    monkeypatch.setattr(run, "load", lambda *_: (load, None, 0.0))
    monkeypatch.setattr(run, "metadata", lambda _s, repeat, *_: {"_throughput": 100.0 + repeat, "load_errors": 0})
    server = types.SimpleNamespace(alive=lambda: True)
    servers = {("cpython-3.13", cell.server): (server, 1, "t")}
    run.rounds(servers, "", attempt=1)  # type: ignore[arg-type]
    run.rounds(servers, "", attempt=2)  # type: ignore[arg-type]
    measured = run.slices[0].measured
    assert [r.repeat for r, _md in measured] == [0, 1, 2, 3, 4, 5]
    assert [md["lab_attempt"] for _r, md in measured if md] == [1, 1, 1, 2, 2, 2]
    assert run.slices[0].by_round() == {r: 100.0 + r for r in range(6)}
    assert steps[-1].endswith("(round 6/6, again: noisy)")


def test_a_round_that_finishes_no_request_is_measured_again_in_a_window_sized_from_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import types

    from lab.cells import cells_of
    from lab.spec import load_plan

    plan = load_plan("quick")
    # The async ORM point: no nominal wait, so its first window is sized from a 10 ms guess.
    cell = next(c for c in cells_of(plan) if c.tier == "http" and c.point.nominal_wait_ms == 0 and c.concurrency == 32)
    run, steps = _point_run(monkeypatch, dataclasses.replace(plan, repeats=1), cell, "cpython-3.13t")
    nothing: dict[str, object] = {"requests": 0, "stagger_s": 0.0, "warmup_s": 2.6, "duration_s": 0.8}
    served: dict[str, object] = {"requests": 90, "throughput_rps": 28.0, "latency_us": {"p50": 1_100_000}}
    windows: list[tuple[float, float]] = []

    def load(
        _s: object, _port: int, _server: object, window: tuple[float, float]
    ) -> tuple[dict[str, object], None, float]:
        windows.append(window)
        return (nothing if len(windows) == 1 else served), None, 0.0

    monkeypatch.setattr(run, "load", load)
    monkeypatch.setattr(run, "metadata", lambda *_: {"_throughput": 28.0, "load_errors": 0})
    server = types.SimpleNamespace(alive=lambda: True)
    run.rounds({("cpython-3.13t", cell.server): (server, 1, "t")}, "", attempt=1)  # type: ignore[dict-item]
    # Requests held at least 2.6 + 0.8 s: the second window warms up its cap (5 s, three
    # p50s would be 10 s) and runs to the plan's longest window (200 requests at 32 / 3.4 s
    # per request would take 21 s).
    assert windows == [(pytest.approx(2.6), pytest.approx(0.8)), (5.0, plan.http_max_duration)]
    assert "nothing finished, longer window" in steps[-1]
    ((record, md),) = run.slices[0].measured
    assert record.status == "ok" and md is not None and md["lab_window_retried"] == 1


@pytest.mark.parametrize(("remeasure", "attempts"), [(True, [1, 2]), (False, [1])])
def test_a_noisy_point_is_measured_again_only_where_the_plan_says_so(
    monkeypatch: pytest.MonkeyPatch, remeasure: bool, attempts: list[int]
) -> None:
    import types

    from lab.cells import cells_of
    from lab.measure import http
    from lab.spec import load_plan

    plan = dataclasses.replace(load_plan("smoke"), remeasure_noisy=remeasure)
    cell = next(c for c in cells_of(plan) if c.tier == "http")
    run = object.__new__(http.PointRun)
    run.ctx = types.SimpleNamespace(plan=plan)  # type: ignore[assignment]
    run.point = cell.point
    md: dict[str, object] = {}
    run.slices = [types.SimpleNamespace(cell=cell, measured=[(None, md)])]  # type: ignore[list-item]
    done: list[int] = []
    monkeypatch.setattr(run, "rounds", lambda _servers, _problem, attempt: done.append(attempt))
    monkeypatch.setattr(http, "noisy_cells", lambda _slices: {cell: 0.25})
    run.all_rounds({}, "")
    assert done == attempts
    # Measured again or not, a cell whose rounds still disagree says so in its metadata.
    assert md == {"lab_first_attempt_spread": 0.25, "lab_noisy": 1}
