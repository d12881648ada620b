"""Measure stage: run a plan's cells on both interpreters and write raw pyperf JSON.

Hands on ``<run>/raw/<interpreter>.json`` (one pyperf suite per interpreter, readable by
``python -m pyperf compare_to``), ``<run>/raw/histograms/`` (HDR latency histograms)
and ``<run>/cells.json`` (every cell's status, including failed and invalid ones, which
cannot be pyperf benchmarks when they have no values). The reporter reads only these.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyperf

from lab import FORMAT_VERSION
from lab.cache import LOCMEM, CacheChoice, local_redis
from lab.cells import CROSSING_KINDS, VARIANT_INTERFACE, Cell, CellRecord, cells_of
from lab.database import DatabaseChoice, local_postgres
from lab.envs import WORKLOADS_DIR, WorkloadEnv
from lab.errors import LabError, SpecError
from lab.files import write_atomic
from lab.gilstate import GilVerdict, read_reports, verdict
from lab.journal import Journal
from lab.proc import ManagedProcess, child_env, managed, pinned_to, repin, run_logged, tail
from lab.provenance import interpreter_metadata, machine_metadata
from lab.resources import ResourceUsage, TreeSampler
from lab.saturation import Saturation, saturation
from lab.serve import free_port, responds_tcp, running_server
from lab.servers import HOST, ServerConfig
from lab.spec import MixPoint, Plan

log = logging.getLogger("lab.measure")

# A cell whose error rate exceeds this is failed, not merely slow.
MAX_ERROR_RATE = 0.01
# A cell whose load generator was on-CPU for more than this share of its wall time is invalid.
LOADGEN_SATURATED = 0.9
LAB_ROOT = Path(__file__).resolve().parent.parent
# aiohttp and its helpers ship C speedups for 3.13 but run pure Python on 3.13t; turning
# them off on both keeps the measured stack identical (recorded as lab_c_speedups).
SAME_STACK_ENV = {
    name: "1"
    for name in (
        "AIOHTTP_NO_EXTENSIONS",
        "MULTIDICT_NO_EXTENSIONS",
        "YARL_NO_EXTENSIONS",
        "PROPCACHE_NO_EXTENSIONS",
        "FROZENLIST_NO_EXTENSIONS",
    )
}


def one_line_metadata(md: dict[str, Any]) -> dict[str, Any]:
    """pyperf refuses newlines in metadata values; error samples and log tails have them."""
    return {k: " | ".join(v.splitlines()) if isinstance(v, str) else v for k, v in md.items()}


def cpu_layout(cores: int) -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """(server CPUs, load generator + upstream CPUs) for a core budget; None means "all, shared".

    Budget N pins the server to the first N CPUs this process may use and the helpers to
    the rest; a budget of every CPU (or 0) shares them all, since nothing is left over.
    """
    available = sorted(os.sched_getaffinity(0))
    if cores > len(available):
        raise SpecError(f"core budget {cores} is more than the {len(available)} CPUs available ({available})")
    if cores == 0 or cores == len(available):
        return None, None
    return frozenset(available[:cores]), frozenset(available[cores:])


def check_core_budgets(budgets: tuple[int, ...]) -> None:
    for cores in budgets:
        cpu_layout(cores)


def layout_label(server: frozenset[int] | None, helpers: frozenset[int] | None) -> str:
    def cpus(s: frozenset[int] | None) -> str:
        return ",".join(map(str, sorted(s if s is not None else os.sched_getaffinity(0))))

    if server is None or helpers is None:
        return f"shared: server, load generator and upstream on CPUs {cpus(server)}"
    return f"server on CPUs {cpus(server)}; load generator and upstream on CPUs {cpus(helpers)}"


class Runner:
    """Runs the cells of a plan; one instance per run directory."""

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
    ) -> None:
        self.plan = plan
        self.database = database
        self.django = django
        self.database_url = database.url
        self.cache = cache
        self.cache_url = cache.url
        self.envs = envs
        self.stage = stage_dir
        self.port = port
        self.cells = cells_of(plan, only_mixes)
        # The crossing microbenchmarks belong to no mix: a run limited to some mixes skips them.
        self.crossing_concurrency = () if only_mixes else plan.crossing_concurrency
        self.on_progress: Callable[[str], None] = lambda _msg: None
        self.work = Path(tempfile.mkdtemp(prefix="lab-work-"))
        self.records: list[CellRecord] = []
        self.benchmarks: dict[str, list[pyperf.Benchmark]] = {e.interpreter.spec_name: [] for e in envs}
        self.machine = machine_metadata()
        check_core_budgets(plan.core_budgets)
        self.helper_cpus: frozenset[int] | None = None  # where load generator and upstream run now
        self.upstream: ManagedProcess | None = None
        self.upstream_url = ""
        # (interpreter, point label, middleware) -> variant -> probe result (status, digest, crossings)
        self.probes: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
        self._http_runs: dict[tuple[str, str], list[pyperf.Run]] = {}
        self.variants: tuple[str, ...] = plan.variants
        self.crossing_benchmarks: dict[str, list[pyperf.Benchmark]] = {}
        self.overhead_benchmarks: dict[str, list[pyperf.Benchmark]] = {}
        self.logs = stage_dir / "logs"
        # (interpreter, curve) -> concurrency -> [(throughput, p95 ms)] of valid closed-loop repeats
        self.curves: dict[tuple[str, tuple[str, str, str, str, int]], dict[int, list[tuple[float, float]]]] = {}
        # Open-loop cells: (offered rate, what it is relative to), or why there is none.
        self.open_rates: dict[Cell, tuple[float, str]] = {}
        self.open_problems: dict[Cell, str] = {}
        self.journal = Journal(stage_dir, fingerprint or {})
        self.done: set[tuple[str, str, int]] = set()
        for entry in self.journal.entries:
            self._apply(entry)

    # -- helpers ---------------------------------------------------------------

    def _env_vars(
        self, env: WorkloadEnv, gil_dir: Path, middleware: str = "default", interface: str = ""
    ) -> dict[str, str]:
        return {
            "LAB_MIDDLEWARE": middleware,
            "LAB_INTERFACE": interface,
            "DJANGO_SETTINGS_MODULE": "labsite.settings",
            "LAB_DATA_DIR": str(self.work / env.interpreter.spec_name / "data"),
            "LAB_GIL_REPORT_DIR": str(gil_dir),
            "LAB_UPSTREAM_URL": self.upstream_url,
            "PYTHONPATH": str(WORKLOADS_DIR),
            **SAME_STACK_ENV,
            **({"LAB_DATABASE_URL": self.database_url, "PSYCOPG_IMPL": "python"} if self.database_url else {}),
            **({"LAB_CACHE_URL": self.cache_url} if self.cache_url else {}),
        }

    def _gil_dir(self, name: str) -> Path:
        path = self.work / "gil" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _judge(self, env: WorkloadEnv, gil_dir: Path) -> GilVerdict:
        return verdict(read_reports(gil_dir), free_threaded=env.interpreter.role == "ft")

    def total_steps(self) -> int:
        """Progress steps: one per probe, handler cell and HTTP cell repeat, per interpreter."""
        cells = [c for c in self.cells if not self.skip_reason(c)]
        probes = len({self._probe_key(self.envs[0], c) for c in cells})
        per_cell = [1 if c.tier == "handler" else self.plan.repeats for c in cells]
        crossings = len(CROSSING_KINDS) * len(self.crossing_concurrency)
        if self.crossing_concurrency and any(c.tier == "handler" and c.variant == "async" for c in cells):
            crossings += 1  # the crossing-counter overhead cell
        return len(self.envs) * (probes + sum(per_cell) + crossings) - len(self.done)

    def _common_metadata(self, env: WorkloadEnv, cell: Cell) -> dict[str, Any]:
        probe = self.probes.get(self._probe_key(env, cell), {}).get(cell.variant, {})
        return {
            **interpreter_metadata(env),
            **{f"machine_{k}": v for k, v in self.machine.items() if v != ""},
            "lab_tier": cell.tier,
            "lab_mix": cell.point.mix,
            "lab_point": cell.point.label,
            "lab_endpoint": cell.point.endpoint,
            "lab_query": cell.point.query or "-",
            "lab_nominal_wait_ms": cell.point.nominal_wait_ms,
            "lab_variant": cell.variant,
            "lab_middleware": cell.middleware,
            "lab_database": self.database.label,
            "lab_psycopg_impl": "python" if self.database.kind == "postgres" else "-",
            "lab_cache": self.cache.label,
            "lab_core_budget": cell.cores or len(os.sched_getaffinity(0)),
            "lab_concurrency": cell.concurrency,
            "lab_format_version": FORMAT_VERSION,
            "lab_c_speedups": "aiohttp, multidict, yarl, propcache, frozenlist: off",
            "crossings_sync_to_async": probe.get("sync_to_async", -1),
            "crossings_async_to_sync": probe.get("async_to_sync", -1),
            "crossings_total": probe.get("sync_to_async", -1) + probe.get("async_to_sync", 0) if probe else -1,
            "body_sha256": probe.get("sha256", "-"),
        }

    def _stores(self) -> dict[str, dict[str, list[pyperf.Benchmark]]]:
        return {"handler": self.benchmarks, "crossings": self.crossing_benchmarks, "overhead": self.overhead_benchmarks}

    def _apply(self, entry: dict[str, Any]) -> None:
        """Take a finished cell (live or from the journal) into the run's records and stores."""
        record = CellRecord(**entry["record"])
        self.records.append(record)
        self.done.add(Journal.key(entry["record"]))
        if "bench" in entry:
            bench = entry.get("_object") or pyperf.Benchmark.load(str(self.stage / entry["bench"]["file"]))
            self._stores()[entry["bench"]["store"]].setdefault(record.interpreter, []).append(bench)
        if "http_run" in entry:
            md = one_line_metadata(entry["http_run"]["metadata"])
            value = entry["http_run"]["value"]
            run = pyperf.Run([value], metadata=md, collect_metadata=False)
            self._http_runs.setdefault((record.interpreter, record.bench_name), []).append(run)
            if record.status == "ok" and not record.rate_fraction:
                curve = (md["lab_point"], md["lab_variant"], md["server_spec"], md["lab_middleware"], record.cores)
                level = self.curves.setdefault((record.interpreter, curve), {})
                level.setdefault(record.concurrency, []).append((1.0 / value, float(md["latency_p95_ms"])))

    def is_done(self, interpreter: str, bench_name: str, repeat: int = 0) -> bool:
        return (interpreter, bench_name, repeat) in self.done

    def _keep(
        self,
        record: CellRecord,
        *,
        bench: tuple[str, pyperf.Benchmark] | None = None,
        http_run: tuple[float, dict[str, Any]] | None = None,
    ) -> None:
        entry: dict[str, Any] = {"record": asdict(record)}
        if bench is not None and record.status != "failed":
            store, obj = bench
            slug = f"{store}-{record.interpreter}-{record.bench_name.replace('/', '-')}-r{record.repeat}.json"
            path = self.stage / "journal" / slug
            path.parent.mkdir(exist_ok=True)
            obj.dump(str(path), replace=True)
            entry["bench"] = {"store": store, "file": str(path.relative_to(self.stage))}
        if http_run is not None:
            entry["http_run"] = {"value": http_run[0], "metadata": http_run[1]}
        self.journal.add(entry)
        if bench is not None:
            entry["_object"] = bench[1]
        self._apply(entry)
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

    # -- setup -----------------------------------------------------------------

    @contextlib.contextmanager
    def upstream_running(self) -> Iterator[None]:
        """The upstream simulator, for the whole run, if any cell calls it."""
        # The client benchmarks call the upstream too.
        if not self.crossing_concurrency and not any(c.point.needs_upstream for c in self.cells):
            yield
            return
        port = free_port()
        cmd = [sys.executable, "-m", "lab.upstream", "--port", str(port)]
        with managed(
            cmd,
            name="upstream simulator",
            log_path=self.logs / "upstream.log",
            env=child_env({"PYTHONPATH": str(LAB_ROOT)}),
            stop_signal=signal.SIGINT,
            cpus=self.helper_cpus,
        ) as upstream:
            upstream.wait_ready(lambda: responds_tcp(port), timeout=30)
            self.upstream, self.upstream_url = upstream, f"http://{HOST}:{port}"
            try:
                yield
            finally:
                self.upstream = None

    def seed(self) -> None:
        """Create and seed each interpreter's own database copy (same rows every run)."""
        for env in self.envs:
            name = env.interpreter.spec_name
            log_path = self.logs / f"seed-{name}.log"
            vars_ = self._env_vars(env, self._gil_dir(f"seed-{name}"))
            code = run_logged(
                [str(env.python), "-m", "shop.seed"], log_path=log_path, env=child_env(vars_), cwd=WORKLOADS_DIR
            )
            if code != 0:
                raise LabError(f"seeding the database for {name} failed: {tail(log_path, 5)}")

    def skip_reason(self, cell: Cell) -> str:
        """Why a cell cannot run in this configuration at all ('' if it can)."""
        if cell.variant == "async-db":
            if self.database.kind != "postgres":
                return "async-db needs PostgreSQL (--database postgres-local or a postgres:// URL); SQLite has no async driver"
            if self.django != "6.1":
                return f"django-async-backend is released for Django 6.1 only, not {self.django}"
        return ""

    @contextlib.contextmanager
    def services_running(self) -> Iterator[None]:
        """Throwaway PostgreSQL / redis-server for the run (postgres-local, redis-local)."""
        with contextlib.ExitStack() as stack:
            if self.database.managed:
                self.database_url = stack.enter_context(local_postgres(self.work, free_port()))
            if self.cache.managed:
                self.cache_url = stack.enter_context(local_redis(self.work, free_port()))
            yield

    @staticmethod
    def _probe_key(env: WorkloadEnv, cell: Cell) -> tuple[str, str, str]:
        return env.interpreter.spec_name, cell.point.label, cell.middleware

    def probe(self, env: WorkloadEnv, point: MixPoint, middleware: str) -> dict[str, dict[str, Any]]:
        """Render the point in every variant in-process with crossing counting on.

        Checks that all variants return the same body and records crossings per request;
        measurement servers then run with counting off. WSGI and ASGI variants are probed
        in separate processes, each configured as its server would be (``LAB_INTERFACE``).
        """
        result: dict[str, dict[str, Any]] = {}
        for interface in ("wsgi", "asgi"):
            variants = [v for v in self.variants if VARIANT_INTERFACE[v] == interface]  # type: ignore[index]
            if not variants:
                continue
            gil_dir = self._gil_dir(f"probe-{env.interpreter.spec_name}")
            vars_ = {**self._env_vars(env, gil_dir, middleware, interface), "LAB_CROSSINGS": "1"}
            cmd = [
                str(env.python),
                "-m",
                "labsite.inprocess",
                "--endpoint",
                point.endpoint,
                "--query",
                point.query,
                "--variants",
                ",".join(variants),
            ]
            done = subprocess.run(
                cmd, cwd=WORKLOADS_DIR, env=child_env(vars_), capture_output=True, text=True, timeout=300, check=False
            )
            if done.returncode != 0:
                where = f"{point.label} on {env.interpreter.spec_name}"
                raise LabError(f"probe of {where} failed: {done.stderr.strip()[-300:]}")
            result.update(json.loads(done.stdout))
        for info in result.values():
            counts = dict(part.split("=") for part in info["crossings"].split(";") if "=" in part)
            info["sync_to_async"] = int(counts.get("sync_to_async", -1))
            info["async_to_sync"] = int(counts.get("async_to_sync", -1))
        return result

    def probe_problem(self, env: WorkloadEnv, cell: Cell) -> str:
        """Why this cell cannot be measured on this interpreter ('' if it can)."""
        probe = self.probes.get(self._probe_key(env, cell), {})
        if cell.variant not in probe:
            return f"no probe result for variant {cell.variant}"
        bad_status = {v: p["status"] for v, p in probe.items() if p["status"] != 200}
        if bad_status:
            return f"non-200 responses in the probe: {bad_status}"
        if len({p["sha256"] for p in probe.values()}) > 1:
            return "variants returned different bodies: " + ", ".join(f"{v}={p['length']} B" for v, p in probe.items())
        return ""

    # -- handler tier ------------------------------------------------------------

    def run_pyperf(
        self, env: WorkloadEnv, script: str, args: list[str], tag: str, vars_: dict[str, str]
    ) -> tuple[Path | None, str, float]:
        """Run a pyperf script in the interpreter's environment: (output or None, error, seconds)."""
        out = self.work / "pyperf" / f"{tag}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        plan = self.plan
        cmd = [
            str(env.python),
            str(WORKLOADS_DIR / script),
            *args,
            "--processes",
            str(plan.handler_processes),
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
        log_path = self.logs / f"{tag}.log"
        started = time.monotonic()
        code = run_logged(cmd, log_path=log_path, env=child_env(vars_), cwd=WORKLOADS_DIR, timeout=1800)
        seconds = round(time.monotonic() - started, 2)
        if code != 0 or not out.is_file():
            return None, f"pyperf exited {code}: {tail(log_path, 3)}", seconds
        return out, "", seconds

    def run_handler(
        self, cell: Cell, env: WorkloadEnv, *, count_crossings: bool = False
    ) -> tuple[CellRecord, tuple[str, pyperf.Benchmark] | None]:
        """One handler-tier cell; with ``count_crossings`` the same cell with the crossing
        counter on, to measure what the counter itself costs."""
        name = env.interpreter.spec_name
        bench_name = cell.bench_name + ("/crossing-counter" if count_crossings else "")
        tag = f"{name}-{bench_name.replace('/', '-')}"
        gil_dir = self._gil_dir(tag)
        vars_ = self._env_vars(env, gil_dir, cell.middleware, cell.interface)
        if count_crossings:
            vars_["LAB_CROSSINGS"] = "1"
        args = [
            "--variant",
            cell.variant,
            "--endpoint",
            cell.point.endpoint,
            "--query",
            cell.point.query,
            "--concurrency",
            str(cell.concurrency),
            "--bench-name",
            bench_name,
        ]
        record = CellRecord.of(cell, name, repeat=0)
        record.bench_name = bench_name
        out, error, record.wall_s = self.run_pyperf(env, "bench_handler.py", args, tag, vars_)
        if out is None:
            record.status, record.reason = "failed", error
            return record, None
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
        if count_crossings:
            bench.update_metadata({"lab_crossing_counter": 1})
        if judged.status != "ok":
            record.status, record.reason = judged.status, judged.reason
        return record, ("overhead" if count_crossings else "handler", bench)

    def measure_counter_overhead(self, handler_cells: list[Cell]) -> None:
        """Re-run one async handler cell with the crossing counter on (when the plan has
        crossing microbenchmarks), so the report can say what counting costs per request."""
        candidates = [c for c in handler_cells if c.variant == "async"]
        if not self.crossing_concurrency or not candidates:
            return
        cell = min(candidates, key=lambda c: c.concurrency)
        for env in self.envs:
            if self.is_done(env.interpreter.spec_name, cell.bench_name + "/crossing-counter"):
                continue
            self.on_progress(f"{cell.bench_name} with the crossing counter on {env.interpreter.spec_name}")
            record, bench = self.run_handler(cell, env, count_crossings=True)
            self._keep(record, bench=bench)

    # -- crossing microbenchmarks --------------------------------------------------

    def run_crossings(
        self, env: WorkloadEnv, kind: str, concurrency: int
    ) -> tuple[CellRecord, tuple[str, pyperf.Benchmark] | None]:
        name = env.interpreter.spec_name
        bench_name = f"crossing/{kind}/c{concurrency}"
        tag = f"{name}-{bench_name.replace('/', '-')}"
        gil_dir = self._gil_dir(tag)
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
        out, error, record.wall_s = self.run_pyperf(env, script, args, tag, self._env_vars(env, gil_dir))
        if out is None:
            record.status, record.reason = "failed", error
            return record, None
        judged = self._judge(env, gil_dir)
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

    # -- HTTP tier ---------------------------------------------------------------

    def run_load(self, cell: Cell, port: int, server: ManagedProcess) -> tuple[dict[str, Any], ResourceUsage, float]:
        """Drive one cell against a running server; sample server and upstream meanwhile."""
        sampler = TreeSampler(server.pid)
        upstream_sampler = TreeSampler(self.upstream.pid) if self.upstream and cell.point.needs_upstream else None
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
            str(self.plan.http_duration),
            "--warmup",
            str(self.plan.http_warmup),
            "--max-requests",
            str(self.plan.http_max_requests),
        ]
        if cell.open_loop:
            load_cmd += ["--rate", f"{self.open_rates[cell][0]:.3f}"]
        limit = self.plan.http_warmup + self.plan.http_duration + 60
        try:
            done = subprocess.run(
                load_cmd,
                capture_output=True,
                text=True,
                timeout=limit,
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

    def server_config(self, env: WorkloadEnv, cell: Cell) -> ServerConfig:
        """The cell's server with the loop and parser this interpreter gets under the plan's stack."""
        assert cell.server is not None
        if self.plan.stack == "best-available":
            return cell.server.with_stack(env.best_stack["loop"], env.best_stack["http"])
        return cell.server

    def http_batch(self, env: WorkloadEnv, cells: list[Cell], repeat: int) -> None:
        """All cells of one server config, core budget and middleware stack on one
        interpreter, against one server process tree.

        One server per batch keeps start-up out of the cells; the GIL verdict covers
        every process of that server, so it applies to every cell of the batch.
        """
        name = env.interpreter.spec_name
        first = cells[0]
        config = self.server_config(env, first)
        open_tag = "-open" if first.open_loop else ""
        tag = f"{name}-{config.spec.replace(':', '-')}-cores{first.cores}-{first.middleware}{open_tag}-r{repeat}"
        gil_dir = self._gil_dir(tag)
        server_cpus, self.helper_cpus = cpu_layout(first.cores)
        if self.upstream is not None:
            # The upstream simulator lives for the whole run: it follows the helpers' CPUs.
            repin(self.upstream.pid, self.helper_cpus)
        server_env = self._env_vars(env, gil_dir, first.middleware, config.interface)
        pending: list[tuple[Cell, CellRecord, dict[str, Any] | None]] = []
        try:
            with running_server(
                config,
                env,
                port=self.port,
                extra_env=server_env,
                log_path=self.logs / f"{tag}-server.log",
                cpus=server_cpus,
            ) as (server, port):
                for cell in cells:
                    self.on_progress(f"{cell.bench_name} on {name} (repeat {repeat + 1}/{self.plan.repeats})")
                    record = CellRecord.of(cell, name, repeat)
                    pending.append((cell, record, None))
                    problem = self.probe_problem(env, cell)
                    if not problem and cell.open_loop and cell not in self.open_rates:
                        problem = self.open_problems.get(cell, "no saturation measured for its closed-loop curve")
                    if problem:
                        record.status, record.reason = "failed", problem
                        continue
                    if not server.alive():
                        record.status = "failed"
                        record.reason = f"server died (exit {server.proc.returncode}): {server.log_tail(3)}"
                        continue
                    started = time.monotonic()
                    try:
                        load, usage, upstream_cpu = self.run_load(cell, port, server)
                    except (LabError, subprocess.TimeoutExpired) as exc:
                        record.status, record.reason = "failed", str(exc)
                        continue
                    record.wall_s = round(time.monotonic() - started, 2)
                    if not server.alive():
                        record.status = "failed"
                        record.reason = (
                            f"server died during the cell (exit {server.proc.returncode}): {server.log_tail(3)}"
                        )
                        continue
                    server_md = {**config.metadata(), "lab_cpu_layout": layout_label(server_cpus, self.helper_cpus)}
                    metadata = self._http_metadata(env, cell, repeat, server_md, load, usage, upstream_cpu)
                    if metadata["load_errors"]:
                        # Say why requests failed while the server's log is at hand.
                        tail_text = " | ".join(server.log_tail(4)[-600:].splitlines())
                        metadata["load_error_samples"] += f" | server log: {tail_text}"
                    pending[-1] = (cell, record, metadata)
        except LabError as exc:  # the server did not start: every cell of the batch fails
            for cell in cells[len(pending) :]:
                pending.append((cell, CellRecord.of(cell, name, repeat), None))
            for _cell, record, _md in pending:
                if record.status == "ok":
                    record.status, record.reason = "failed", str(exc)
        # The server is stopped now, so every one of its processes has written its GIL report.
        judged = self._judge(env, gil_dir)
        for _cell, record, cell_md in pending:
            record.gil = judged.metadata()
            if record.status == "ok" and cell_md is not None:
                record.status, record.reason = self._judge_load(cell_md, judged)
                if record.status != "failed":  # invalid cells stay in the JSON, marked, for the record
                    verdict_md = {**judged.metadata(), "lab_status": record.status, "lab_reason": record.reason or "-"}
                    # One pyperf value per repeat: wall seconds per request (1 / throughput),
                    # so pyperf's "lower is faster" holds and compare_to works unchanged.
                    md = {**cell_md, **verdict_md}
                    self._keep(record, http_run=(1.0 / md.pop("_throughput"), md))
                    continue
            self._keep(record)

    @staticmethod
    def _judge_load(md: dict[str, Any], judged: GilVerdict) -> tuple[Any, str]:
        errors, requests = md["load_errors"], md["load_requests"]
        if md["load_ok"] == 0 or errors > MAX_ERROR_RATE * max(1, requests):
            return "failed", f"{errors} of {requests} requests failed: {md['load_error_samples']}"
        if md["load_busy"] > LOADGEN_SATURATED:
            # The generator (one thread) was busy nearly all the time: the figure is its
            # limit, not the server's. Kept, marked, excluded from verdicts.
            why = f"load generator saturated: busy {md['load_busy']:.0%} of the cell's wall time"
            return "invalid", why + (f"; {judged.reason}" if judged.reason else "")
        return judged.status, judged.reason

    def _http_metadata(
        self,
        env: WorkloadEnv,
        cell: Cell,
        repeat: int,
        server_md: dict[str, Any],
        load: dict[str, Any],
        usage: ResourceUsage,
        upstream_cpu: float,
    ) -> dict[str, Any]:
        name = env.interpreter.spec_name
        hist_path = self.stage / "raw" / "histograms" / name / f"{cell.bench_name.replace('/', '-')}-r{repeat}.hdr"
        hist_path.parent.mkdir(parents=True, exist_ok=True)
        hist_path.write_text(load["histogram"] + "\n")
        total_requests = load["requests"] + load["warmup"]
        lat = load["latency_us"]
        return {
            **self._common_metadata(env, cell),
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
            "load_connections": load["connections"],
            "load_duration_s": load["duration_s"],
            "load_requests": load["requests"],
            "load_ok": load["ok"],
            "load_errors": load["errors"] + load["non_2xx"],
            "load_error_samples": "; ".join(load["error_samples"]) or "-",
            "load_cpu_s": round(load["cpu_s"], 4),
            # Share of the generator's own wall time spent on its CPU (1.0: it was the bottleneck).
            "load_busy": round(load["cpu_s"] / load["wall_s"], 4) if load.get("wall_s") else 0.0,
            "server_cpu_s": round(usage.cpu_s, 4),
            "upstream_cpu_s": round(upstream_cpu, 4),
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
            "_throughput": load["throughput_rps"],
        }

    # -- the whole plan ----------------------------------------------------------

    def run(self) -> list[CellRecord]:
        runnable: list[Cell] = []
        for cell in self.cells:
            reason = self.skip_reason(cell)
            if not reason:
                runnable.append(cell)
                continue
            for env in self.envs:
                record = CellRecord.of(cell, env.interpreter.spec_name, 0)
                record.status, record.reason = "skipped", reason
                self.records.append(record)
        self.variants = tuple(dict.fromkeys(c.variant for c in runnable))
        if self.done:
            log.info("resuming: %d cells were finished earlier and are kept", len(self.done))
        with self.services_running(), self.upstream_running():
            self.seed()
            to_probe = {self._probe_key(self.envs[0], c)[1:]: c for c in runnable}
            for env in self.envs:
                for cell in to_probe.values():
                    self.on_progress(f"probing {cell.point.label} ({cell.middleware}) on {env.interpreter.spec_name}")
                    self.probes[self._probe_key(env, cell)] = self.probe(env, cell.point, cell.middleware)
            for index, cell in enumerate(c for c in runnable if c.tier == "handler"):
                # Alternate which interpreter goes first so slow drift does not favour one side.
                for env in self.envs if index % 2 == 0 else list(reversed(self.envs)):
                    if self.is_done(env.interpreter.spec_name, cell.bench_name):
                        continue
                    self.on_progress(f"{cell.bench_name} on {env.interpreter.spec_name}")
                    problem = self.probe_problem(env, cell)
                    if problem:
                        record = CellRecord.of(cell, env.interpreter.spec_name, 0)
                        record.status, record.reason = "failed", problem
                        self._keep(record)
                    else:
                        record, bench = self.run_handler(cell, env)
                        self._keep(record, bench=bench)
            self.measure_counter_overhead([c for c in runnable if c.tier == "handler"])
            for index, (kind, concurrency) in enumerate(
                (k, c) for k in CROSSING_KINDS for c in self.crossing_concurrency
            ):
                for env in self.envs if index % 2 == 0 else list(reversed(self.envs)):
                    if self.is_done(env.interpreter.spec_name, f"crossing/{kind}/c{concurrency}"):
                        continue
                    self.on_progress(f"crossing/{kind}/c{concurrency} on {env.interpreter.spec_name}")
                    record, bench = self.run_crossings(env, kind, concurrency)
                    self._keep(record, bench=bench)
            http = [c for c in runnable if c.tier == "http"]
            self.run_http([c for c in http if not c.open_loop])
            open_cells = [c for c in http if c.open_loop]
            if open_cells:
                self.choose_open_rates(open_cells)
                self.run_http(open_cells)
        for (name, _bench), runs in self._http_runs.items():
            self.benchmarks[name].append(pyperf.Benchmark(runs))
        return self.records

    def run_http(self, cells: list[Cell]) -> None:
        """Repeats outermost and interpreters inside (A B A B, never A A B B); one server
        per interpreter, server config, core budget and middleware stack within a repeat."""
        batches: dict[tuple[int, str, str], list[Cell]] = {}
        for cell in cells:
            assert cell.server is not None
            batches.setdefault((cell.cores, cell.server.spec, cell.middleware), []).append(cell)
        for repeat in range(self.plan.repeats):
            for env in self.envs:
                name = env.interpreter.spec_name
                for batch in batches.values():
                    todo = [c for c in batch if not self.is_done(name, c.bench_name, repeat)]
                    if todo:
                        self.http_batch(env, todo, repeat)

    def choose_open_rates(self, cells: list[Cell]) -> None:
        """Offered rate per open-loop cell: its fraction of the saturation throughput of the
        best `sync` server on the GIL build for the same point, core budget and middleware,
        so every variant and both interpreters get the same rate (or of the first variant's,
        when the plan has no `sync`)."""
        basis_variant = "sync" if "sync" in self.variants else self.variants[0]
        gil = self.envs[0].interpreter.spec_name
        # (point, middleware, cores) -> [(saturation, server)] of the basis variant on 3.13
        found: dict[tuple[str, str, int], list[tuple[Saturation, str]]] = {}
        for (name, (point, variant, server, middleware, cores)), levels in self.curves.items():
            if (name, variant) != (gil, basis_variant):
                continue
            means = {
                c: (statistics.fmean(v[0] for v in vs), statistics.fmean(v[1] for v in vs)) for c, vs in levels.items()
            }
            sat = saturation(means, self.plan.slo_ms)
            if sat is not None:
                found.setdefault((point, middleware, cores), []).append((sat, server))
        for cell in cells:
            candidates = found.get((cell.point.label, cell.middleware, cell.cores))
            if not candidates:
                self.open_problems[cell] = f"no valid closed-loop curve of {basis_variant} on {gil} to saturate"
                continue
            sat, server = max(candidates, key=lambda f: f[0].throughput_rps)
            basis = (
                f"{cell.rate_fraction:g} x {sat.throughput_rps:.1f} req/s, the saturation of {basis_variant} on {gil} "
                f"({server}, {sat.concurrency} connections: {sat.reason})"
            )
            self.open_rates[cell] = (cell.rate_fraction * sat.throughput_rps, basis)

    def write(self, plan_path_note: str) -> None:
        raw = self.stage / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        stores = (
            ("", self.benchmarks),
            ("crossings", self.crossing_benchmarks),
            ("overhead", self.overhead_benchmarks),
        )
        for env in self.envs:
            name = env.interpreter.spec_name
            for subdir, store in stores:
                if store.get(name):
                    (raw / subdir).mkdir(exist_ok=True)
                    suite = pyperf.BenchmarkSuite(store[name])
                    write_atomic(raw / subdir / f"{name}.json", functools.partial(_dump_suite, suite))
        # The run is whole: the resume journal has served its purpose.
        shutil.rmtree(self.stage / "journal", ignore_errors=True)
        self.journal.path.unlink(missing_ok=True)
        cells_doc = {
            "format_version": FORMAT_VERSION,
            "plan": asdict(self.plan),
            "plan_source": plan_path_note,
            "machine": self.machine,
            "interpreters": {
                e.interpreter.spec_name: {**e.interpreter.provenance(), "packages": e.packages} for e in self.envs
            },
            "probes": {f"{k[0]} {k[1]}": v for k, v in self.probes.items()},
            "cells": [asdict(r) for r in self.records],
        }
        text = json.dumps(cells_doc, indent=2, default=str) + "\n"
        write_atomic(self.stage / "cells.json", lambda p: p.write_text(text))


def _dump_suite(suite: pyperf.BenchmarkSuite, path: Path) -> None:
    suite.dump(str(path), replace=True)
