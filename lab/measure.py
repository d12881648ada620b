"""Measure stage: run a plan's cells on both interpreters and write raw pyperf JSON.

Hands on ``<run>/raw/<interpreter>.json`` (one pyperf suite per interpreter, readable by
``python -m pyperf compare_to``), ``<run>/raw/histograms/`` (HDR latency histograms)
and ``<run>/cells.json`` (every cell's status, including failed and invalid ones, which
cannot be pyperf benchmarks when they have no values). The reporter reads only these.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyperf

from lab import FORMAT_VERSION, __version__
from lab.envs import WORKLOADS_DIR, WorkloadEnv
from lab.errors import LabError
from lab.gilstate import CellStatus, GilVerdict, read_reports, verdict
from lab.proc import child_env, run_logged, tail
from lab.resources import TreeSampler
from lab.serve import running_server, server_for
from lab.spec import Plan, Tier, Variant

log = logging.getLogger("lab.measure")

ENDPOINT = "catalog"
VARIANT_INTERFACE: dict[Variant, str] = {
    "sync": "wsgi",
    "async": "asgi",
    "bridged": "asgi",
    "sync-on-asgi": "asgi",
}
VARIANT_PATH: dict[Variant, str] = {
    "sync": "/catalog/sync/",
    "async": "/catalog/async/",
    "bridged": "/catalog/bridged/",
    "sync-on-asgi": "/catalog/sync/",
}
# A cell whose error rate exceeds this is failed, not merely slow.
MAX_ERROR_RATE = 0.01
# Seconds a server needs to start and stop, for the duration estimate.
SERVER_OVERHEAD_S = 3.0


@dataclass(frozen=True, kw_only=True)
class Cell:
    tier: Tier
    variant: Variant
    concurrency: int

    @property
    def bench_name(self) -> str:
        return f"{self.tier}/{ENDPOINT}/{self.variant}/c{self.concurrency}"


@dataclass(kw_only=True)
class CellRecord:
    interpreter: str
    tier: str
    variant: str
    concurrency: int
    repeat: int
    status: CellStatus
    reason: str = ""
    bench_name: str = ""
    wall_s: float = 0.0
    gil: dict[str, Any] = field(default_factory=dict)


def cells_of(plan: Plan) -> list[Cell]:
    cells: list[Cell] = []
    for tier in plan.tiers:
        levels = plan.handler_concurrency if tier == "handler" else plan.http_concurrency
        cells.extend(Cell(tier=tier, variant=v, concurrency=c) for v in plan.variants for c in levels)
    return cells


def estimate_seconds(plan: Plan, interpreters: int) -> float:
    """Rough wall time of a plan, printed before the run starts."""
    total = 0.0
    for cell in cells_of(plan):
        if cell.tier == "handler":
            # pyperf: calibration plus (warmups + values) x min_time per worker, ~1 s start-up each.
            per_proc = 1.0 + (plan.handler_warmups + plan.handler_values + 2) * plan.handler_min_time
            total += interpreters * (plan.handler_processes * per_proc + 2.0)
        else:
            total += interpreters * plan.repeats * (plan.http_warmup + plan.http_duration + SERVER_OVERHEAD_S)
    return total


def machine_metadata() -> dict[str, Any]:
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count() or 0,
        "cpu_affinity": ",".join(map(str, affinity)),
        "cpu_model": _cpu_model(),
        "lab_version": __version__,
        "lab_commit": _git_commit(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=WORKLOADS_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def interpreter_metadata(env: WorkloadEnv) -> dict[str, Any]:
    i = env.interpreter
    meta: dict[str, Any] = {
        "lab_interpreter": i.spec_name,
        "lab_role": i.role,
        "lab_build_profile": i.build_profile,
        "lab_configure_flags": " ".join(i.configure_flags) or "(none)",
        "lab_py_gil_disabled": int(i.py_gil_disabled),
        "lab_interpreter_version": i.version,
        "lab_compiler": i.compiler,
    }
    meta.update({f"pkg_{name}": version for name, version in env.packages.items()})
    if "PYTHON_GIL" in os.environ:
        meta["lab_python_gil_env"] = os.environ["PYTHON_GIL"]
    return meta


class Runner:
    """Runs the cells of a plan; one instance per run directory."""

    def __init__(
        self,
        plan: Plan,
        envs: list[WorkloadEnv],
        stage_dir: Path,
        *,
        port: int | None,
        on_progress: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.plan = plan
        self.envs = envs
        self.stage = stage_dir
        self.port = port
        self.on_progress = on_progress
        self.work = Path(tempfile.mkdtemp(prefix="lab-work-"))
        self.records: list[CellRecord] = []
        self.benchmarks: dict[str, list[pyperf.Benchmark]] = {e.interpreter.spec_name: [] for e in envs}
        self.machine = machine_metadata()

    # -- helpers ---------------------------------------------------------------

    def _env_vars(self, env: WorkloadEnv, gil_dir: Path) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": "labsite.settings",
            "LAB_DATA_DIR": str(self.work / env.interpreter.spec_name / "data"),
            "LAB_GIL_REPORT_DIR": str(gil_dir),
        }

    def _gil_dir(self, name: str) -> Path:
        path = self.work / "gil" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _judge(self, env: WorkloadEnv, gil_dir: Path) -> GilVerdict:
        return verdict(read_reports(gil_dir), free_threaded=env.interpreter.role == "ft")

    def total_steps(self) -> int:
        n = 0
        for cell in cells_of(self.plan):
            n += len(self.envs) * (1 if cell.tier == "handler" else self.plan.repeats)
        return n

    # -- setup -----------------------------------------------------------------

    def seed(self) -> None:
        """Create and seed each interpreter's own database copy (same rows every run)."""
        for env in self.envs:
            log_path = self.work / "logs" / f"seed-{env.interpreter.spec_name}.log"
            vars_ = self._env_vars(env, self._gil_dir(f"seed-{env.interpreter.spec_name}"))
            code = run_logged(
                [str(env.python), "-m", "shop.seed"],
                log_path=log_path,
                env=child_env({"PYTHONPATH": str(WORKLOADS_DIR), **vars_}),
                cwd=WORKLOADS_DIR,
            )
            if code != 0:
                raise LabError(f"seeding the database for {env.interpreter.spec_name} failed: {tail(log_path, 5)}")

    # -- handler tier ------------------------------------------------------------

    def run_handler(self, cell: Cell, env: WorkloadEnv) -> CellRecord:
        name = env.interpreter.spec_name
        tag = f"{name}-{cell.bench_name.replace('/', '-')}"
        gil_dir = self._gil_dir(tag)
        out = self.work / "pyperf" / f"{tag}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        vars_ = self._env_vars(env, gil_dir)
        cmd = [
            str(env.python),
            str(WORKLOADS_DIR / "bench_handler.py"),
            "--variant",
            cell.variant,
            "--concurrency",
            str(cell.concurrency),
            "--bench-name",
            cell.bench_name,
            "--processes",
            str(self.plan.handler_processes),
            "--values",
            str(self.plan.handler_values),
            "--warmups",
            str(self.plan.handler_warmups),
            "--min-time",
            str(self.plan.handler_min_time),
            # pyperf workers get only a few variables; pass what the workload needs explicitly.
            "--inherit-environ",
            ",".join(sorted(vars_)),
            "--quiet",
            "--output",
            str(out),
        ]
        log_path = self.work / "logs" / f"{tag}.log"
        started = time.monotonic()
        code = run_logged(cmd, log_path=log_path, env=child_env(vars_), cwd=WORKLOADS_DIR, timeout=1800)
        record = CellRecord(
            interpreter=name,
            tier=cell.tier,
            variant=cell.variant,
            concurrency=cell.concurrency,
            repeat=0,
            status="ok",
            bench_name=cell.bench_name,
            wall_s=round(time.monotonic() - started, 2),
        )
        if code != 0 or not out.is_file():
            record.status, record.reason = "failed", f"pyperf exited {code}: {tail(log_path, 3)}"
            return record
        judged = self._judge(env, gil_dir)
        record.gil = judged.metadata()
        bench = pyperf.Benchmark.load(str(out))
        bench.update_metadata(
            {
                **self._common_metadata(env, cell),
                **judged.metadata(),
                "lab_status": judged.status,
                "lab_reason": judged.reason or "-",
            }
        )
        self.benchmarks[name].append(bench)
        if judged.status != "ok":
            record.status, record.reason = judged.status, judged.reason
        return record

    def _common_metadata(self, env: WorkloadEnv, cell: Cell) -> dict[str, Any]:
        return {
            **interpreter_metadata(env),
            **{f"machine_{k}": v for k, v in self.machine.items() if v != ""},
            "lab_tier": cell.tier,
            "lab_workload": ENDPOINT,
            "lab_variant": cell.variant,
            "lab_concurrency": cell.concurrency,
            "lab_format_version": FORMAT_VERSION,
        }

    # -- HTTP tier ---------------------------------------------------------------

    def run_http(self, cell: Cell, env: WorkloadEnv, repeat: int) -> tuple[CellRecord, pyperf.Run | None]:
        name = env.interpreter.spec_name
        tag = f"{name}-{cell.bench_name.replace('/', '-')}-r{repeat}"
        gil_dir = self._gil_dir(tag)
        config = server_for(VARIANT_INTERFACE[cell.variant], self.plan.server_threads)
        record = CellRecord(
            interpreter=name,
            tier=cell.tier,
            variant=cell.variant,
            concurrency=cell.concurrency,
            repeat=repeat,
            status="ok",
            bench_name=cell.bench_name,
        )
        started = time.monotonic()
        load: dict[str, Any] | None = None
        usage = None
        with running_server(
            config,
            env,
            port=self.port,
            extra_env=self._env_vars(env, gil_dir),
            log_path=self.work / "logs" / f"{tag}-server.log",
        ) as (server, port):
            sampler = TreeSampler(server.pid)
            sampler.start()
            load_cmd = [
                sys.executable,
                "-m",
                "lab.load",
                "--url",
                f"http://127.0.0.1:{port}{VARIANT_PATH[cell.variant]}",
                "--connections",
                str(cell.concurrency),
                "--duration",
                str(self.plan.http_duration),
                "--warmup",
                str(self.plan.http_warmup),
                "--max-requests",
                str(self.plan.http_max_requests),
            ]
            log.debug("$ %s", " ".join(load_cmd))
            limit = self.plan.http_warmup + self.plan.http_duration + 60
            done = subprocess.run(
                load_cmd,
                capture_output=True,
                text=True,
                timeout=limit,
                check=False,
                env=child_env({"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}),
            )
            usage = sampler.stop()
            if done.returncode != 0:
                record.status, record.reason = (
                    "failed",
                    f"load generator exited {done.returncode}: {done.stderr.strip()[-300:]}",
                )
            else:
                load = json.loads(done.stdout)
            if not server.alive():
                record.status = "failed"
                record.reason = f"server died during the cell (exit {server.proc.returncode}): {server.log_tail(3)}"
        # The server has now been stopped gracefully, so every process has written its GIL report.
        record.wall_s = round(time.monotonic() - started, 2)
        judged = self._judge(env, gil_dir)
        record.gil = judged.metadata()
        if record.status != "ok" or load is None:
            return record, None
        errors = load["errors"] + load["non_2xx"]
        if load["ok"] == 0 or errors > MAX_ERROR_RATE * max(1, load["requests"]):
            record.status = "failed"
            record.reason = f"{errors} of {load['requests']} requests failed: {load['error_samples'][:2]}"
            return record, None
        if judged.status != "ok":
            record.status, record.reason = judged.status, judged.reason
        hist_path = self.stage / "raw" / "histograms" / name / f"{cell.bench_name.replace('/', '-')}-r{repeat}.hdr"
        hist_path.parent.mkdir(parents=True, exist_ok=True)
        hist_path.write_text(load["histogram"] + "\n")
        total_requests = load["requests"] + load["warmup"]
        lat = load["latency_us"]
        assert usage is not None
        metadata = {
            **self._common_metadata(env, cell),
            **config.metadata(),
            **judged.metadata(),
            "name": cell.bench_name,
            "unit": "second",
            "lab_status": judged.status,
            "lab_reason": judged.reason or "-",
            "lab_repeat": repeat,
            "load_generator": load["generator"],
            "load_connections": load["connections"],
            "load_duration_s": load["duration_s"],
            "load_requests": load["requests"],
            "load_errors": errors,
            "load_cpu_s": round(load["cpu_s"], 4),
            "server_cpu_s": round(usage.cpu_s, 4),
            "load_cpu_share": round(load["cpu_s"] / usage.cpu_s, 4) if usage.cpu_s else 0,
            "server_cpu_ms_per_req": round(1000 * usage.cpu_s / max(1, total_requests), 4),
            "server_rss_peak_mib": round(usage.rss_peak_mib, 1),
            "server_rss_mean_mib": round(usage.rss_mean_mib, 1),
            "server_threads_peak": usage.threads_peak,
            "throughput_rps": round(load["throughput_rps"], 2),
            "latency_p50_ms": lat["p50"] / 1000,
            "latency_p95_ms": lat["p95"] / 1000,
            "latency_p99_ms": lat["p99"] / 1000,
            "latency_p999_ms": lat["p999"] / 1000,
            "latency_max_ms": lat["max"] / 1000,
            "histogram_file": str(hist_path.relative_to(self.stage)),
        }
        # One pyperf value per repeat: wall seconds per request (1 / throughput), so
        # pyperf's "lower is faster" holds and compare_to works unchanged.
        run = pyperf.Run([1.0 / load["throughput_rps"]], metadata=metadata, collect_metadata=False)
        return record, run

    # -- the whole plan ----------------------------------------------------------

    def run(self) -> list[CellRecord]:
        self.seed()
        cells = cells_of(self.plan)
        for index, cell in enumerate(c for c in cells if c.tier == "handler"):
            # Alternate which interpreter goes first so slow drift does not favour one side.
            order = self.envs if index % 2 == 0 else list(reversed(self.envs))
            for env in order:
                self.on_progress(f"{cell.bench_name} on {env.interpreter.spec_name}")
                self._keep(self.run_handler(cell, env))
        http_runs: dict[tuple[str, str], list[pyperf.Run]] = {}
        # Repeats outermost and interpreters innermost: A B A B, never A A B B.
        for repeat in range(self.plan.repeats):
            for cell in (c for c in cells if c.tier == "http"):
                for env in self.envs:
                    name = env.interpreter.spec_name
                    self.on_progress(f"{cell.bench_name} on {name} (repeat {repeat + 1}/{self.plan.repeats})")
                    try:
                        record, run = self.run_http(cell, env, repeat)
                    except LabError as exc:
                        record = CellRecord(
                            interpreter=name,
                            tier=cell.tier,
                            variant=cell.variant,
                            concurrency=cell.concurrency,
                            repeat=repeat,
                            status="failed",
                            reason=str(exc),
                            bench_name=cell.bench_name,
                        )
                        run = None
                    self._keep(record)
                    if run is not None:
                        http_runs.setdefault((name, cell.bench_name), []).append(run)
        for (name, _bench), runs in http_runs.items():
            self.benchmarks[name].append(pyperf.Benchmark(runs))
        return self.records

    def _keep(self, record: CellRecord) -> None:
        self.records.append(record)
        if record.status != "ok":
            # Loudly, as it happens: an invalid cell must not wait for the summary to be seen.
            log.warning(
                "%s: %s on %s (repeat %d): %s",
                record.status.upper(),
                record.bench_name,
                record.interpreter,
                record.repeat,
                record.reason,
            )

    def write(self, plan_path_note: str) -> None:
        raw = self.stage / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for env in self.envs:
            name = env.interpreter.spec_name
            benches = self.benchmarks[name]
            if benches:
                tmp = raw / f".{name}.json.tmp"
                pyperf.BenchmarkSuite(benches).dump(str(tmp), replace=True)
                tmp.rename(raw / f"{name}.json")
        cells_doc = {
            "format_version": FORMAT_VERSION,
            "plan": asdict(self.plan),
            "plan_source": plan_path_note,
            "machine": self.machine,
            "interpreters": {
                e.interpreter.spec_name: {**e.interpreter.provenance(), "packages": e.packages} for e in self.envs
            },
            "cells": [asdict(r) for r in self.records],
        }
        write_json_atomic(self.stage / "cells.json", cells_doc)


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.rename(path)
