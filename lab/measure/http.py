"""HTTP tier: real servers under load over loopback, measured in paired, interleaved rounds.

Why paired: the VM drifts by ~10% between runs minutes apart, so a ratio whose two sides
are measured minutes apart carries that drift. For one mix point (at one core budget and
middleware stack) every server being compared is up at once, one per interpreter and
server shape, each on its own port; an idle server costs nothing. Load then runs in
short slices that visit every (interpreter, variant, shape) once per round, in an order
shuffled per round, so drift lands on both sides of every ratio. A ratio is formed per
round and its interval comes from the rounds (``lab.stats``).

Why windows sized by samples: a slice lasts long enough for ``http_min_requests`` at the
throughput the previous round measured (within ``http_duration``..``http_max_duration``),
and warms up for several p50s per connection, so slow cells are not judged on a handful
of requests. A cell whose per-round 3.13t / 3.13 ratios disagree by more than ``NOISY_CV``
has its whole point measured for as many rounds again (so the pairing holds, and the point
ends with twice the rounds); if the cell's rounds, all of them, still disagree that much it
is kept, marked ``lab_noisy`` and left out of verdicts by the reporter.

One pyperf value per round: wall seconds per request (1 / throughput), so pyperf's "lower
is faster" holds and ``compare_to`` works unchanged.

Over 400 lines on purpose: the paired rounds, their windows, the per-slice metadata and the
noise rule belong together; the load generator, servers and statistics live elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.cells import Cell, CellRecord, plan_window, stagger_of
from lab.envs import WorkloadEnv
from lab.errors import LabError
from lab.gilstate import GilVerdict
from lab.measure.context import LAB_ROOT, RunContext
from lab.measure.layout import cpu_layout, layout_label
from lab.measure.probe import probe_problem
from lab.measure.store import Results
from lab.proc import ManagedProcess, child_env, pinned_to, repin
from lab.resources import ResourceUsage, TreeSampler
from lab.serve import running_server, wait_serving
from lab.servers import HOST, ServerConfig
from lab.spec import CLIENT_COOKIE
from lab.stats import NOISY_CV

log = logging.getLogger("lab.measure")
# A cell whose error rate exceeds this is failed, not merely slow.
MAX_ERROR_RATE = 0.01
# A cell whose load generator was on-CPU for more than this share of its wall time is invalid.
LOADGEN_SATURATED = 0.9
NO_REQUEST_COMPLETED = "no request completed in the window"


@dataclass
class Slice:
    """One cell on one interpreter: the server it runs against and what its rounds gave."""

    env: WorkloadEnv
    cell: Cell
    config: ServerConfig
    measured: list[tuple[CellRecord, dict[str, Any] | None]] = field(default_factory=list)

    @property
    def interpreter(self) -> str:
        return self.env.interpreter.spec_name

    def by_round(self) -> dict[int, float]:
        return {r.repeat: md["_throughput"] for r, md in self.measured if md is not None}


def paired_spread(a: Slice, b: Slice) -> float:
    """How much the rounds disagree about b/a: the standard deviation of the per-round log
    ratios (≈ their CV). Drift shared by a round cancels in its ratio, so this is the noise
    the verdict sees, not the machine's drift between rounds."""
    ra, rb = a.by_round(), b.by_round()
    logs = [math.log(rb[r] / ra[r]) for r in ra.keys() & rb.keys() if ra[r] > 0 and rb[r] > 0]
    return statistics.stdev(logs) if len(logs) >= 2 else 0.0


def noisy_cells(slices: list[Slice], threshold: float = NOISY_CV) -> dict[Cell, float]:
    """Cells whose 3.13t / 3.13 rounds disagree beyond ``threshold`` (cell -> spread)."""
    by_cell: dict[Cell, list[Slice]] = {}
    for s in slices:
        by_cell.setdefault(s.cell, []).append(s)
    spreads = {cell: paired_spread(pair[0], pair[1]) for cell, pair in by_cell.items() if len(pair) == 2}
    return {cell: spread for cell, spread in spreads.items() if spread > threshold}


def server_config(ctx: RunContext, env: WorkloadEnv, cell: Cell) -> ServerConfig:
    """The cell's server with the loop and parser this interpreter gets under the plan's stack."""
    assert cell.server is not None
    if ctx.plan.stack == "best-available":
        return cell.server.with_stack(env.best_stack["loop"], env.best_stack["http"])
    return cell.server


def expected_reports(config: ServerConfig, free_threaded: bool) -> int | None:
    """How many processes of this server shape should write a GIL report (None: unknown)."""
    from lab import servers

    count = getattr(servers, "expected_gil_reports", None)
    return None if count is None else int(count(config, free_threaded=free_threaded))


def judge_load(md: dict[str, Any], judged: GilVerdict) -> tuple[Any, str]:
    errors, requests = md["load_errors"], md["load_requests"]
    if requests == 0:
        # Nothing finished inside the window: there is no error rate to quote ("0 of 0").
        samples = md["load_error_samples"]
        return "failed", NO_REQUEST_COMPLETED + (f": {samples}" if samples not in ("", "-") else "")
    if md["load_ok"] == 0 or errors > MAX_ERROR_RATE * max(1, requests):
        return "failed", f"{errors} of {requests} requests failed: {md['load_error_samples']}"
    if md["load_busy"] > LOADGEN_SATURATED:
        # The generator was busy nearly all the time: the figure is its limit, not the
        # server's. Kept, marked, excluded from verdicts.
        why = f"load generator saturated: busy {md['load_busy']:.0%} of the cell's wall time"
        return "invalid", why + (f"; {judged.reason}" if judged.reason else "")
    return judged.status, judged.reason


def point_groups(cells: list[Cell]) -> dict[tuple[int, str, str, float], list[Cell]]:
    """Cells measured together: one mix point at one core budget, middleware and load mode."""
    groups: dict[tuple[int, str, str, float], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.cores, cell.middleware, cell.point.label, cell.rate_fraction), []).append(cell)
    return groups


class PointRun:
    """One mix point: its servers up together, its slices in shuffled rounds."""

    def __init__(
        self,
        ctx: RunContext,
        results: Results,
        cells: list[Cell],
        on_progress: Callable[[str], None],
        open_rates: dict[Cell, tuple[float, str]],
        open_problems: dict[Cell, str],
    ) -> None:
        self.ctx, self.results, self.cells = ctx, results, cells
        self.on_progress = on_progress
        self.open_rates, self.open_problems = open_rates, open_problems
        first = cells[0]
        self.point, self.cores, self.middleware = first.point, first.cores, first.middleware
        self.server_cpus, self.helper_cpus = cpu_layout(first.cores)
        self.slices = [Slice(env, cell, server_config(ctx, env, cell)) for env in ctx.envs for cell in cells]
        # Last measured (throughput, p50 s) per slice, to size the next round's window.
        self.last: dict[int, tuple[float, float]] = {}

    def todo(self) -> bool:
        rounds = range(self.ctx.plan.repeats)
        return any(not self.results.is_done(s.interpreter, s.cell.bench_name, r) for s in self.slices for r in rounds)

    def run(self) -> None:
        if not self.todo():
            return
        ctx = self.ctx
        if ctx.upstream is not None:
            # The upstream simulator lives for the whole run: it follows the helpers' CPUs.
            repin(ctx.upstream.pid, self.helper_cpus)
        servers: dict[tuple[str, ServerConfig], tuple[ManagedProcess, int, str]] = {}
        gil_dirs: dict[tuple[str, ServerConfig], str] = {}
        start_problem = ""
        with contextlib.ExitStack() as stack:
            for s in self.slices:
                key = (s.interpreter, s.config)
                if key in servers or key in gil_dirs:
                    continue
                open_tag = "-open" if s.cell.open_loop else ""
                tag = (
                    f"{s.interpreter}-{s.config.spec.replace(':', '-')}-cores{self.cores}-{self.middleware}"
                    f"-{self.point.label.replace('/', '-').replace('@', '-').replace('=', '')}{open_tag}"
                )
                gil_dir = ctx.gil_dir(tag)
                gil_dirs[key] = str(gil_dir)
                env_vars = ctx.env_vars(s.env, gil_dir, self.middleware, s.config.interface)
                try:
                    server, port = stack.enter_context(
                        running_server(
                            s.config,
                            s.env,
                            port=ctx.port if ctx.port and not servers else None,
                            extra_env=env_vars,
                            log_path=ctx.logs / f"{tag}-server.log",
                            cpus=self.server_cpus,
                            wait=False,  # they boot together; waited for below
                        )
                    )
                except LabError as exc:  # this server did not start: its slices fail
                    start_problem = f"{s.config.label} on {s.interpreter} did not start: {exc}"
                    continue
                servers[key] = (server, port, tag)
            for key, (server, port, _tag) in list(servers.items()):
                try:
                    wait_serving(server, port)
                except LabError as exc:
                    start_problem = f"{key[1].label} on {key[0]} did not start: {exc}"
                    del servers[key]
            self.all_rounds(servers, start_problem)
        # Every server is stopped now, so each of its processes has written its GIL report.
        envs = {(s.interpreter, s.config): s.env for s in self.slices}
        judged = {
            key: ctx.judge(env, Path(gil_dirs[key]), expected_reports(key[1], env.interpreter.role == "ft"))
            for key, env in envs.items()
            if key in gil_dirs
        }
        for s in self.slices:
            verdict = judged.get((s.interpreter, s.config))
            for record, md in s.measured:
                if verdict is not None:
                    record.gil = verdict.metadata()
                if record.status == "ok" and md is not None and verdict is not None:
                    record.status, record.reason = judge_load(md, verdict)
                    if record.status != "failed":  # invalid cells stay in the JSON, marked
                        final = {
                            **md,
                            **verdict.metadata(),
                            "lab_status": record.status,
                            "lab_reason": record.reason or "-",
                        }
                        self.results.keep(record, http_run=(1.0 / final.pop("_throughput"), final))
                        continue
                self.results.keep(record)

    def all_rounds(
        self, servers: dict[tuple[str, ServerConfig], tuple[ManagedProcess, int, str]], start_problem: str
    ) -> None:
        """The point's rounds; as many again where the plan re-measures noisy points; every
        measured value records whether its cell stayed noisy."""
        self.rounds(servers, start_problem, attempt=1)
        first = noisy_cells(self.slices)
        if first and not self.ctx.plan.remeasure_noisy:
            log.info(
                "%s: %d cell(s) with 3.13t/3.13 rounds disagreeing beyond %.0f%% stay flagged noisy "
                "(plan %s does not measure them again)",
                self.point.label,
                len(first),
                100 * NOISY_CV,
                self.ctx.plan.name,
            )
        elif first:
            names = ", ".join(f"{c.variant}@{c.server.spec if c.server else '-'} ({v:.0%})" for c, v in first.items())
            log.warning(
                "%s: 3.13t/3.13 rounds disagree beyond %.0f%% (%s); measuring %d more rounds of the point",
                self.point.label,
                100 * NOISY_CV,
                names,
                self.ctx.plan.repeats,
            )
            # More rounds, not other rounds: the first five stay, so the point ends with ten
            # and its intervals narrow by ~1/sqrt(2). Replacing them (as the lab did up to
            # 2026-12-01) threw away half the time spent and came out just as noisy on this VM.
            self.rounds(servers, start_problem, attempt=2)
        still = noisy_cells(self.slices)
        for s in self.slices:
            for _record, md in s.measured:
                if md is not None:
                    md["lab_first_attempt_spread"] = round(first.get(s.cell, 0.0), 4)
                    md["lab_noisy"] = int(s.cell in still)

    def rounds(
        self, servers: dict[tuple[str, ServerConfig], tuple[ManagedProcess, int, str]], start_problem: str, attempt: int
    ) -> None:
        plan = self.ctx.plan
        # Attempt 2 adds rounds plan.repeats .. 2 * plan.repeats - 1 after the first ones.
        first_round = (attempt - 1) * plan.repeats
        for repeat in range(first_round, first_round + plan.repeats):
            order = list(self.slices)
            # A fixed seed per point and round: a rerun visits the slices in the same order.
            random.Random(f"{self.point.label}/{self.cores}/{self.middleware}/{repeat}/{attempt}").shuffle(order)
            for position, s in enumerate(order):
                if self.results.is_done(s.interpreter, s.cell.bench_name, repeat):
                    continue
                self.on_progress(
                    f"{s.cell.bench_name} on {s.interpreter} (round {repeat + 1}/{first_round + plan.repeats}"
                    + (", again: noisy" if attempt > 1 else "")
                    + ")"
                )
                record = CellRecord.of(s.cell, s.interpreter, repeat)
                s.measured.append((record, None))
                problem = probe_problem(self.ctx, s.env, s.cell)
                if not problem and s.cell.open_loop and s.cell not in self.open_rates:
                    problem = self.open_problems.get(s.cell, "no saturation measured for its closed-loop curve")
                running = servers.get((s.interpreter, s.config))
                if not problem and running is None:
                    problem = start_problem or "server not running"
                if problem:
                    record.status, record.reason = "failed", problem
                    continue
                assert running is not None
                server, port, _tag = running
                if not server.alive():
                    record.status = "failed"
                    record.reason = f"server died (exit {server.proc.returncode}): {server.log_tail(3)}"
                    continue
                started = time.monotonic()
                try:
                    load, usage, upstream_cpu = self.load(s, port, server, self.window(s))
                    window_retried = load["requests"] == 0
                    if window_retried:
                        # Nothing finished: its requests outlasted the warm-up and the window,
                        # which a first round sizes from a guessed p50 (a point with no nominal
                        # wait guesses 10 ms; the async ORM point's cold requests took seconds,
                        # failing 1 of 256 cells on a clean run of 687c613). Once more, sized
                        # from what this attempt saw, instead of failing the cell.
                        self.on_progress(f"{s.cell.bench_name} on {s.interpreter}: nothing finished, longer window")
                        load, usage, upstream_cpu = self.load(s, port, server, self.retry_window(s, load))
                except (LabError, subprocess.TimeoutExpired) as exc:
                    record.status, record.reason = "failed", str(exc)
                    continue
                record.wall_s = round(time.monotonic() - started, 2)
                if not server.alive():
                    record.status = "failed"
                    record.reason = f"server died during the cell (exit {server.proc.returncode}): {server.log_tail(3)}"
                    continue
                server_md = {
                    **s.config.metadata(),
                    "lab_cpu_layout": layout_label(self.server_cpus, self.helper_cpus),
                }
                md = self.metadata(s, repeat, server_md, load, usage, upstream_cpu)
                md.update(
                    {
                        "lab_round_position": position,
                        "lab_attempt": attempt,
                        "lab_paired": 1,
                        "lab_window_retried": int(window_retried),
                    }
                )
                if md["load_errors"]:
                    # Say why requests failed while the server's log is at hand.
                    tail_text = " | ".join(server.log_tail(4)[-600:].splitlines())
                    md["load_error_samples"] += f" | server log: {tail_text}"
                s.measured[-1] = (record, md)
                self.last[id(s)] = (load["throughput_rps"], load["latency_us"]["p50"] / 1e6)

    def window(self, s: Slice) -> tuple[float, float]:
        """(warm-up, duration) seconds for this slice's next round."""
        guess_p50 = s.cell.point.nominal_wait_ms / 1000 + 0.01
        # Before the first round: Little's law with every connection busy waiting upstream, and
        # a cold server's allowance.
        cold = 0 if id(s) in self.last else s.cell.concurrency
        rps, p50 = self.last.get(id(s), (s.cell.concurrency / guess_p50, guess_p50))
        return plan_window(self.ctx.plan, rps, p50, cold)

    def retry_window(self, s: Slice, seen: dict[str, Any]) -> tuple[float, float]:
        """(warm-up, duration) seconds for a slice whose load ``seen`` finished no request: its
        requests held at least that attempt's warm-up and window, so that is the p50 to size by."""
        p50 = seen["stagger_s"] + seen["warmup_s"] + seen["duration_s"]
        return plan_window(self.ctx.plan, s.cell.concurrency / p50, p50)

    def load(
        self, s: Slice, port: int, server: ManagedProcess, window: tuple[float, float]
    ) -> tuple[dict[str, Any], ResourceUsage, float]:
        """Drive one slice for ``window`` (warm-up, duration) seconds against its running
        server; sample server and upstream meanwhile."""
        cell, ctx = s.cell, self.ctx
        warmup, duration = window
        # Several workers share one listening socket: record how the connections split.
        sampler = TreeSampler(server.pid, port=port if s.config.workers > 1 else None)
        upstream = ctx.upstream if ctx.upstream and cell.point.needs_upstream else None
        upstream_sampler = TreeSampler(upstream.pid) if upstream else None
        sampler.start()
        if upstream_sampler:
            upstream_sampler.start()
        load_cmd = [
            sys.executable,
            "-m",
            "lab.load",
            "--url",
            f"http://{HOST}:{port}{cell.path}",
            "--connections",
            str(cell.concurrency),
            "--duration",
            f"{duration:.3f}",
            "--warmup",
            f"{warmup:.3f}",
            "--max-requests",
            str(ctx.plan.http_max_requests),
            *ctx.request_args(cell.point),
            "--header",
            f"Cookie: {CLIENT_COOKIE}",
        ]
        if ctx.plan.http_conn_requests:
            load_cmd += ["--conn-requests", str(ctx.plan.http_conn_requests)]
        if cell.open_loop:
            load_cmd += ["--rate", f"{self.open_rates[cell][0]:.3f}"]
        stagger_s = stagger_of(ctx.plan.http_stagger, cell)
        if stagger_s:
            load_cmd += ["--stagger-ms", f"{stagger_s * 1000:.1f}"]
        try:
            done = subprocess.run(
                load_cmd,
                capture_output=True,
                text=True,
                timeout=stagger_s + warmup + duration + 60,
                check=False,
                env=child_env({"PYTHONPATH": str(LAB_ROOT)}),
                preexec_fn=pinned_to(self.helper_cpus),
            )
        finally:
            usage = sampler.stop()
            upstream_cpu = upstream_sampler.stop().cpu_s if upstream_sampler else 0.0
        if done.returncode != 0:
            raise LabError(f"load generator exited {done.returncode}: {done.stderr.strip()[-300:]}")
        load: dict[str, Any] = json.loads(done.stdout)
        return load, usage, upstream_cpu

    def metadata(
        self,
        s: Slice,
        repeat: int,
        server_md: dict[str, Any],
        load: dict[str, Any],
        usage: ResourceUsage,
        upstream_cpu: float,
    ) -> dict[str, Any]:
        cell, ctx = s.cell, self.ctx
        hist_path = (
            ctx.stage / "raw" / "histograms" / s.interpreter / f"{cell.bench_name.replace('/', '-')}-r{repeat}.hdr"
        )
        hist_path.parent.mkdir(parents=True, exist_ok=True)
        hist_path.write_text(load["histogram"] + "\n")
        total_requests = load["requests"] + load["warmup"]
        lat = load["latency_us"]
        return {
            **ctx.common_metadata(s.env, cell),
            **server_md,
            "name": cell.bench_name,
            "unit": "second",
            "lab_repeat": repeat,
            "load_generator": load["generator"],
            "load_mode": load["mode"],
            "load_rate_rps": round(load["rate_rps"], 3),
            "load_rate_fraction": cell.rate_fraction,
            "load_rate_basis": self.open_rates[cell][1] if cell.open_loop else "-",
            "load_unsent": load["unsent"],
            "load_reconnects": load["reconnects"],
            "load_conn_requests": load.get("conn_requests", 0),
            "load_connections": load["connections"],
            "load_duration_s": load["duration_s"],
            "load_warmup_s": load.get("warmup_s", 0.0),
            "load_stagger_ms": round(1000 * load.get("stagger_s", 0.0), 1),
            "load_requests": load["requests"],
            "load_ok": load["ok"],
            "load_errors": load["errors"] + load["non_2xx"],
            "load_error_samples": "; ".join(load["error_samples"]) or "-",
            "load_cpu_s": round(load["cpu_s"], 4),
            # Share of the generator's own wall time spent on its CPU (1.0: it was the bottleneck).
            "load_busy": round(load["cpu_s"] / (load["wall_s"] * load.get("processes", 1)), 4)
            if load.get("wall_s")
            else 0.0,
            "load_loop": load.get("loop", "-"),
            "load_clamped": load.get("clamped", 0),
            "latency_ttfb_p50_ms": load.get("ttfb_us", {}).get("p50", 0) / 1000,
            "load_events": load.get("events", 0),
            "server_cpu_s": round(usage.cpu_s, 4),
            "upstream_cpu_s": round(upstream_cpu, 4),
            "load_cpu_share": round(load["cpu_s"] / usage.cpu_s, 4) if usage.cpu_s else 0,
            "server_cpu_ms_per_req": round(1000 * usage.cpu_s / max(1, total_requests), 4),
            "server_rss_peak_mib": round(usage.rss_peak_mib, 1),
            "server_rss_mean_mib": round(usage.rss_mean_mib, 1),
            "server_threads_peak": usage.threads_peak,
            "server_processes_peak": usage.processes_peak,
            # "26/6": connections per worker, busiest first ("-": one worker, or not sampled).
            "server_connections_per_worker": "/".join(map(str, usage.connections_per_worker)) or "-",
            "throughput_rps": round(load["throughput_rps"], 2),
            "load_started_rps": round(load.get("started_rps", load["throughput_rps"]), 2),
            # The mean time a connection held each measured request (Little's law's hold time).
            "latency_mean_ms": round(lat.get("mean", 0.0) / 1000, 3),
            "latency_p50_ms": lat["p50"] / 1000,
            "latency_p95_ms": lat["p95"] / 1000,
            "latency_p99_ms": lat["p99"] / 1000,
            "latency_p999_ms": lat["p999"] / 1000,
            "latency_max_ms": lat["max"] / 1000,
            "histogram_file": str(hist_path.relative_to(ctx.stage)),
            "_throughput": load["throughput_rps"],
        }


def run_http_cells(
    ctx: RunContext,
    results: Results,
    cells: list[Cell],
    on_progress: Callable[[str], None],
    open_rates: dict[Cell, tuple[float, str]] | None = None,
    open_problems: dict[Cell, str] | None = None,
) -> None:
    """Every mix point of ``cells`` in turn, each with its servers up together."""
    for group in point_groups(cells).values():
        PointRun(ctx, results, group, on_progress, open_rates or {}, open_problems or {}).run()
