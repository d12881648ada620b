"""What every tier of a run shares: the plan, the environments, where files go, the services.

One ``RunContext`` per run directory. Tiers take it and hand back records; none of them
holds another tier's state. The services (upstream simulator, throwaway PostgreSQL and
Redis) live for the whole run and are started here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab import FORMAT_VERSION
from lab.cache import LOCMEM, CacheChoice, local_redis
from lab.cells import Cell
from lab.database import DatabaseChoice, local_postgres
from lab.envs import WORKLOADS_DIR, WorkloadEnv
from lab.errors import LabError
from lab.gilstate import GilVerdict, read_reports, verdict
from lab.proc import ManagedProcess, child_env, managed, run_logged, tail
from lab.provenance import interpreter_metadata, machine_metadata
from lab.serve import free_port, responds_tcp
from lab.servers import HOST
from lab.spec import MixPoint, Plan

LAB_ROOT = Path(__file__).resolve().parent.parent.parent
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


@dataclass(kw_only=True)
class RunContext:
    plan: Plan
    envs: list[WorkloadEnv]
    stage: Path
    database: DatabaseChoice
    cache: CacheChoice = LOCMEM
    django: str = "6.1"
    port: int | None = None
    # PostgreSQL: Django's connection pool for every variant (LAB_DB_POOL in the settings).
    db_pool: bool = False
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lab-work-")))
    machine: dict[str, Any] = field(default_factory=machine_metadata)
    # What else the machine was doing when the run started (lab.measure.noise).
    noise: dict[str, Any] = field(default_factory=dict)
    database_url: str = ""
    cache_url: str = ""
    upstream: ManagedProcess | None = None
    upstream_url: str = ""
    # (interpreter, point label, middleware) -> variant -> probe result (status, digest, crossings)
    probes: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.database_url = self.database.url
        self.cache_url = self.cache.url

    @property
    def logs(self) -> Path:
        return self.stage / "logs"

    def env_vars(
        self, env: WorkloadEnv, gil_dir: Path, middleware: str = "default", interface: str = ""
    ) -> dict[str, str]:
        """What every workload process of this run sees (settings read them)."""
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
            **({"LAB_DB_POOL": "1"} if self.db_pool else {}),
        }

    def gil_dir(self, name: str) -> Path:
        path = self.work / "gil" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @staticmethod
    def judge(env: WorkloadEnv, gil_dir: Path, expected: int | None = None) -> GilVerdict:
        """The GIL verdict of the processes that wrote into ``gil_dir``; with ``expected``, a
        free-threaded cell missing any process's report is invalid (state unknown)."""
        return verdict(read_reports(gil_dir), free_threaded=env.interpreter.role == "ft", expected=expected)

    @staticmethod
    def request_args(point: MixPoint) -> list[str]:
        """The mix's request as the probe, handler and load generator take it: method, body,
        headers (the lab client's session and CSRF cookie are sent on every request; stacks
        without sessions ignore it)."""
        args = ["--method", point.method]
        if point.body:
            args += ["--body", point.body]
        for name, value in point.headers:
            args += ["--header", f"{name}: {value}"]
        return args

    @staticmethod
    def probe_key(env: WorkloadEnv, cell: Cell) -> tuple[str, str, str]:
        return env.interpreter.spec_name, cell.point.label, cell.middleware

    def common_metadata(self, env: WorkloadEnv, cell: Cell) -> dict[str, Any]:
        probe = self.probes.get(self.probe_key(env, cell), {}).get(cell.variant, {})
        # Every integer the probe reports travels as probe_<key>: sql_statements, upstream_calls,
        # db_connections_opened, ... and write_lock_wait_us (crud on SQLite), which lab.report reads.
        counts = {
            f"probe_{key}": value
            for key, value in probe.items()
            if isinstance(value, int) and key not in ("status", "length", "sync_to_async", "async_to_sync")
        }
        return {
            **interpreter_metadata(env),
            **{f"machine_{k}": v for k, v in self.machine.items() if v != ""},
            "lab_tier": cell.tier,
            "lab_mix": cell.point.mix,
            "lab_point": cell.point.label,
            "lab_endpoint": cell.point.endpoint,
            "lab_query": cell.point.query or "-",
            "lab_method": cell.point.method,
            "lab_nominal_wait_ms": cell.point.nominal_wait_ms,
            "lab_variant": cell.variant,
            "lab_middleware": cell.middleware,
            "lab_database": self.database.label,
            "lab_db_pool": "pooled" if self.db_pool else "unpooled",
            "lab_psycopg_impl": "python" if self.database.kind == "postgres" else "-",
            "lab_cache": self.cache.label,
            "lab_core_budget": cell.cores or len(os.sched_getaffinity(0)),
            "lab_concurrency": cell.concurrency,
            "lab_format_version": FORMAT_VERSION,
            "lab_c_speedups": "aiohttp, multidict, yarl, propcache, frozenlist: off",
            "crossings_sync_to_async": probe.get("sync_to_async", -1),
            "crossings_async_to_sync": probe.get("async_to_sync", -1),
            "crossings_total": probe.get("sync_to_async", -1) + probe.get("async_to_sync", 0) if probe else -1,
            "crossings_cold_total": probe.get("cold_total", -1),
            "body_sha256": probe.get("sha256", "-"),
            **counts,
        }

    # -- services for the whole run ---------------------------------------------------

    @contextlib.contextmanager
    def services_running(self, cells: list[Cell], *, with_clients: bool) -> Iterator[None]:
        """Throwaway PostgreSQL / redis-server (postgres-local, redis-local) and the upstream
        simulator (if any cell, or the client benchmarks, call it), for the whole run."""
        with contextlib.ExitStack() as stack:
            if self.database.managed:
                self.database_url = stack.enter_context(local_postgres(self.work, free_port()))
            if self.cache.managed:
                self.cache_url = stack.enter_context(local_redis(self.work, free_port()))
            if with_clients or any(c.point.needs_upstream for c in cells):
                stack.enter_context(self._upstream_running())
            yield

    @contextlib.contextmanager
    def _upstream_running(self) -> Iterator[None]:
        port = free_port()
        cmd = [sys.executable, "-m", "lab.upstream", "--port", str(port)]
        with managed(
            cmd,
            name="upstream simulator",
            log_path=self.logs / "upstream.log",
            env=child_env({"PYTHONPATH": str(LAB_ROOT)}),
            stop_signal=signal.SIGINT,
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
            vars_ = self.env_vars(env, self.gil_dir(f"seed-{name}"))
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


__all__ = ["LAB_ROOT", "SAME_STACK_ENV", "GilVerdict", "RunContext", "one_line_metadata"]
