"""``lab profile`` from start to end: environments, preparation, measurement, run directory.

Hands on ``results/<run-id>/``: ``profile.json`` (the contract the report reads: project,
endpoints, plan, machine, interpreters and their package checks, per-request counts, every
cell with its rounds and status), ``raw/<interpreter>.json`` (pyperf suites, one benchmark
``profile/<endpoint>/<form>`` per cell with a valid round, value = seconds per request as
in the lab's HTTP tier, readable by ``python -m pyperf compare_to``) and ``report.md``.
The directory appears whole or not at all: it is written under a hidden name and renamed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyperf

from lab import FORMAT_VERSION
from lab.build import Interpreter
from lab.database import local_postgres, parse_database
from lab.errors import LabError, SpecError
from lab.files import write_atomic
from lab.measure.context import one_line_metadata
from lab.profile.env import PackageCheck, ensure_project_env
from lab.profile.measure import Cell, ProfilePlan, check_plan, measure
from lab.profile.prepare import Prepared, Services, count_pass, prepare, upstream_running
from lab.profile.report import render
from lab.profile.spec import ProfileSpec
from lab.provenance import interpreter_metadata, machine_metadata
from lab.serve import free_port

log = logging.getLogger("lab.profile")
PROFILE_FILE = "profile.json"


def check_before_building(plan: ProfilePlan, database: str, results_dir: Path, run_id: str) -> Path:
    """Everything the command line decides, checked before any build or install: the plan's
    ranges, the database (``sqlite``, ``postgres-local`` or a loopback PostgreSQL URL, by
    ``lab.database``'s rules) and a run directory that is new. Returns that directory."""
    check_plan(plan)
    parse_database(database)
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise SpecError(f"--run-id {run_id!r} must be a plain directory name")
    final = results_dir / run_id
    if final.exists():
        raise SpecError(f"results directory '{final}' already exists; pick another --run-id")
    return final


@contextlib.contextmanager
def services_running(spec: ProfileSpec, database: str, work: Path) -> Any:
    choice = parse_database(database)
    with contextlib.ExitStack() as stack:
        url = choice.url
        if choice.managed:
            url = stack.enter_context(local_postgres(work, free_port()))
        elif url:
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            if not responds_tcp_at(parts.hostname or "127.0.0.1", parts.port or 5432):
                raise LabError(f"database {choice.label} does not answer on port {parts.port or 5432}")
        upstream = stack.enter_context(upstream_running(work)) if spec.project.upstream_env else ""
        yield Services(database_url=url, upstream_url=upstream)


def responds_tcp_at(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def run_profile(
    spec: ProfileSpec,
    interpreters: list[Interpreter],
    plan: ProfilePlan,
    *,
    database: str,
    results_dir: Path,
    run_id: str,
) -> tuple[Path, list[Cell]]:
    """Measure the project on every interpreter; the run directory and its cells."""
    final = check_before_building(plan, database, results_dir, run_id)
    installed = [ensure_project_env(i, spec.requirements_path) for i in interpreters]
    for _env, check in installed:
        # Named before anything is measured: what has no wheel, what re-enables the GIL.
        if check.no_wheel:
            log.warning("%s: no wheel for %s (built from source)", check.interpreter, ", ".join(check.no_wheel))
        if check.invalid_reason:
            log.warning("%s: %s; its cells will be invalid", check.interpreter, check.invalid_reason)
    stage = results_dir / f".{run_id}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="lab-profile-"))
    try:
        (work / "logs").mkdir()
        with services_running(spec, database, work) as services:
            prepared = [prepare(spec, env, check, services, work) for env, check in installed]
            counts = {p.name: count_pass(spec, p, services, plan.servers, work, plan.count_requests) for p in prepared}
            cells = measure(spec, prepared, services, plan, work, counts)
        stage.mkdir(parents=True)
        write_run(stage, spec, plan, database, prepared, counts, cells)
        shutil.copytree(work / "logs", stage / "logs")
        stage.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(stage, ignore_errors=True)
    return final, cells


def write_run(
    stage: Path,
    spec: ProfileSpec,
    plan: ProfilePlan,
    database: str,
    prepared: list[Prepared],
    counts: dict[str, dict[str, dict[str, dict[str, float]]]],
    cells: list[Cell],
) -> None:
    checks: dict[str, PackageCheck] = {p.name: p.check for p in prepared}
    doc = {
        "format_version": FORMAT_VERSION,
        "kind": "profile",
        "project": {
            "dir": str(spec.project_dir),
            "endpoints_file": str(spec.source),
            **dataclasses.asdict(spec.project),
        },
        "endpoints": [dataclasses.asdict(e) for e in spec.endpoints],
        "plan": plan.summary(),
        "database": "sqlite (throwaway)" if database == "sqlite" else database,
        "machine": machine_metadata(),
        "interpreters": {p.name: {**p.env.interpreter.provenance(), "packages": p.env.packages} for p in prepared},
        "package_checks": {
            name: {**dataclasses.asdict(c), "invalid_reason": c.invalid_reason} for name, c in checks.items()
        },
        "counts": counts,
        "cells": [dataclasses.asdict(c) for c in cells],
    }
    text = json.dumps(doc, indent=2, default=str) + "\n"
    write_atomic(stage / PROFILE_FILE, lambda p: p.write_text(text))
    raw = stage / "raw"
    raw.mkdir()
    for p in prepared:
        benches = [bench for c in cells if c.interpreter == p.name and (bench := _benchmark(c, p, counts)) is not None]
        if benches:
            pyperf.BenchmarkSuite(benches).dump(str(raw / f"{p.name}.json"), replace=True)
    (stage / "report.md").write_text(render(doc))


def _benchmark(
    cell: Cell, prepared: Prepared, counts: dict[str, dict[str, dict[str, dict[str, float]]]]
) -> pyperf.Benchmark | None:
    """The cell's rounds as one pyperf benchmark (None when no round has a throughput)."""
    rounds = [r for r in cell.rounds if r["throughput_rps"] > 0]
    if cell.status == "failed" or not rounds:
        return None
    per_request = counts.get(prepared.name, {}).get(cell.endpoint, {}).get(cell.form, {})
    common = {
        **interpreter_metadata(prepared.env),
        **cell.gil,
        "name": f"profile/{cell.endpoint}/{cell.form}",
        "unit": "second",
        "lab_tier": "profile",
        "lab_endpoint": cell.endpoint,
        "lab_form": cell.form,
        "lab_path": cell.path,
        "server_spec": cell.server,
        "lab_status": cell.status,
        "lab_reason": cell.reason or "-",
        "lab_format_version": FORMAT_VERSION,
        **{f"profile_{k}": v for k, v in per_request.items()},
    }
    runs = [
        pyperf.Run(
            [1.0 / r["throughput_rps"]],
            metadata=one_line_metadata({**common, **{k: v for k, v in r.items() if k != "throughput_rps"}}),
            collect_metadata=False,
        )
        for r in rounds
    ]
    return pyperf.Benchmark(runs)
