"""Command line: ``python -m lab {interpreters,compare,bench,report}``.

The only place that catches ``LabError``: it prints one ``error: ...`` line on stderr and
exits with the error's code (``lab.errors.EXIT_CODES``, listed in ``--help``). SIGINT,
SIGTERM and SIGHUP all stop a run the way Ctrl-C does (children stopped and reaped,
finished cells kept for a resume) and exit with 130, 143 and 129. Choices are built from
the ``Literal`` types in ``lab.spec`` so the CLI and the specs never drift.

Over 400 lines on purpose: argparse definitions with their help texts (the user's
documentation) are most of it; each command's logic is a short function that hands on to its
stage's module.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from lab import __version__

if TYPE_CHECKING:
    import pandas as pd

    from lab.cells import Cell
from lab.build import EXTERNAL_WARNING, SOURCE_ENV, Interpreter, cache_root, ensure_built, install_dir, use_external
from lab.cache import parse_cache
from lab.database import parse_database
from lab.errors import EXIT_CODES, Interrupted, LabError, MeasurementFailed, SpecError
from lab.proc import guardian
from lab.servers import SERVER_FORMS, STACKS, parse_server
from lab.spec import (
    BUILD_PROFILES,
    DJANGO_LINES,
    MIDDLEWARES,
    REPO_ROOT,
    VARIANTS,
    Plan,
    available_mixes,
    available_plans,
    check_servers_cover,
    load_interpreter,
    load_mix,
    load_plan,
    spec_differences,
)

log = logging.getLogger("lab")
console = Console(stderr=True)
# Tables go to stdout; wide enough not to wrap when piped into a log file.
table_console = Console(width=None if sys.stdout.isatty() else 160)
# Signals that stop a run like Ctrl-C: a CI timeout or `kill` sends SIGTERM, a closing
# terminal SIGHUP.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Ranges of the plan overrides (the same caps as plan files and lab.load).
MAX_REPEATS = 100
DURATION_RANGE_S = (0.1, 600.0)
MAX_CONNECTIONS = 4096
EXIT_EPILOG = "exit codes:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items())


def _common_options(top: bool) -> argparse.ArgumentParser:
    """-q and --version, accepted before and after the command (``lab -q compare`` and
    ``lab compare -q``). After the command the default is SUPPRESS, so a subcommand that
    does not see ``-q`` keeps the value given before it."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--version", action="version", version=f"lab {__version__}")
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="only warnings, errors and the final table",
    )
    return p


def _add_interpreter_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("interpreters")
    g.add_argument(
        "--gil-spec", default="cpython-3.13", help="spec in interpreters/ for the GIL build (default: %(default)s)"
    )
    g.add_argument("--ft-spec", default="cpython-3.13t", help="spec for the free-threaded build (default: %(default)s)")
    g.add_argument(
        "--profile",
        choices=BUILD_PROFILES,
        default="fast",
        help="build profile: fast = plain ./configure (minutes); release = --enable-optimizations "
        "--with-lto, for published results (default: %(default)s)",
    )
    g.add_argument(
        "--source",
        default=None,
        help=f"local CPython tarball, or a directory holding Python-<version>.tar.xz "
        f"(default: ${SOURCE_ENV}, then the cache, then the spec's URL); sha256 is always verified",
    )
    g.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="build specs that differ in more than --disable-gil (the difference is recorded)",
    )
    g.add_argument("--python-gil", metavar="PATH", help="use this existing GIL interpreter instead of building")
    g.add_argument("--python-ft", metavar="PATH", help="use this existing free-threaded interpreter (e.g. python3.13t)")
    g.add_argument("-j", "--jobs", type=int, default=None, help="parallel make jobs (default: CPU count)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lab",
        description="Free-threading comparison lab for Django: builds matched CPython 3.13 and 3.13t, runs "
        "the same Django endpoints as sync and async variants on both, measures with pyperf, reports.",
        epilog=EXIT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(top=True)],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common: dict[str, Any] = {
        "parents": [_common_options(top=False)],
        "epilog": EXIT_EPILOG,
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }

    p = sub.add_parser("interpreters", help="build (or reuse) and verify both interpreters", **common)
    _add_interpreter_options(p)

    p = sub.add_parser(
        "compare",
        help="build if missing, install workloads, measure both interpreters, report",
        description="Run a measurement plan on both interpreters and print the comparison table. "
        "--dry-run lists the plan's cells and the estimated time without building or running anything.",
        **common,
    )
    _add_interpreter_options(p)
    p.add_argument(
        "--plan",
        default="quick",
        help=f"run plan: one of {', '.join(available_plans())}, or a TOML path (default: %(default)s)",
    )
    p.add_argument("--results-dir", type=Path, default=REPO_ROOT / "results", help="where run directories go")
    p.add_argument("--run-id", default=None, help="name of the run directory (default: UTC timestamp and plan)")
    p.add_argument("--port", type=int, default=None, help="server port on 127.0.0.1 (default: a free port per server)")
    p.add_argument(
        "--mix",
        action="append",
        default=None,
        metavar="NAME",
        help=f"run only this mix (repeatable); available: {', '.join(available_mixes())}",
    )
    p.add_argument(
        "--database",
        default="sqlite",
        metavar="DB",
        help="sqlite (embedded, default), postgres-local (a throwaway PostgreSQL started for the run; needs "
        "Debian's postgresql package) or postgres://USER@127.0.0.1:PORT/DB",
    )
    p.add_argument(
        "--cache",
        default="locmem",
        metavar="CACHE",
        help="locmem (Django's local-memory cache, default), redis-local (a throwaway redis-server started for "
        "the run; needs Debian's redis-server package) or redis://127.0.0.1:PORT/DB",
    )
    p.add_argument(
        "--db-pool",
        action="store_true",
        help="PostgreSQL only: Django's connection pool (OPTIONS['pool'], CONN_MAX_AGE=0) for every variant, the "
        "fix Django's docs give for ASGI, where each request's sync code runs in a fresh thread and so opens its own "
        "connection; labelled 'pooled' in every row (default: unpooled, persistent connections per thread)",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=None,
        choices=VARIANTS,
        help="variant(s) to measure, overriding the plan's (async-db needs PostgreSQL)",
    )
    p.add_argument(
        "--cores",
        default=None,
        metavar="LIST",
        help="core budgets to measure, e.g. 1,2: the server is pinned to its first N CPUs, load generator and "
        "upstream to the rest (all CPUs: shared); default: the plan's (quick: all CPUs shared)",
    )
    p.add_argument(
        "--server",
        action="append",
        default=None,
        metavar="KIND:SHAPE",
        help=f"server(s) to measure, overriding the plan's (repeatable): {SERVER_FORMS}",
    )
    p.add_argument(
        "--stack",
        choices=STACKS,
        default=None,
        help="loop and parser for ASGI servers: same = asyncio + h11 on both interpreters (the plans' default); "
        "best-available = uvloop/httptools where they load without the GIL (labelled in every result)",
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="discard an interrupted run of the same --run-id instead of resuming it",
    )
    p.add_argument(
        "--django",
        choices=DJANGO_LINES,
        default=DJANGO_LINES[0],
        help="Django release line installed on both interpreters: the newest (default: %(default)s) or the 5.2 LTS",
    )
    p.add_argument(
        "--middleware",
        action="append",
        default=None,
        choices=MIDDLEWARES,
        help="middleware stack(s) to measure, overriding the plan's: default (async-capable only) "
        "and/or sync-audit (adds a sync-only middleware that reads the database)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        metavar="N",
        help=f"interleaved repeats of every HTTP cell, overriding the plan's (1..{MAX_REPEATS})",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help=f"seconds each HTTP measurement window lasts, overriding the plan's http_duration "
        f"({DURATION_RANGE_S[0]:g}..{DURATION_RANGE_S[1]:g})",
    )
    p.add_argument(
        "--stagger",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start each closed-loop cell's connections spread over one wait of its point (the default, "
        "the plan's http_stagger), or with --no-stagger all at once: against a server that holds each "
        "request a fixed time (stream, long-poll, an upstream wait), connections started together reach it "
        "in bursts that disperse only over tens of seconds, so what they measure depends on the warm-up; "
        "spread, they arrive one by one, as independent clients do",
    )
    p.add_argument(
        "--connections",
        default=None,
        metavar="LIST",
        help=f"concurrent connections of the HTTP cells, e.g. 8,32, overriding the plan's http_concurrency "
        f"(each 1..{MAX_CONNECTIONS})",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan's cells and the estimated time, then exit without building or measuring",
    )

    p = sub.add_parser(
        "bench",
        help="load generator headroom against a trivial responder (and wrk, where installed)",
        description="Measure the lab's load generator: its maximum rate and CPU cost per request against a "
        "trivial responder, cross-checked with wrk where it is installed.",
        **common,
    )
    p.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32], help="connection counts")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (max 60)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per tool (the cell uses at least 5)")
    p.add_argument("--processes", type=int, default=1, help="lab.load generator processes")
    p.add_argument(
        "--cell",
        action="store_true",
        help="also run one HTTP cell (cpu-heavy, sync, gunicorn gthread 1x8, 32 connections, CPython 3.13) "
        "through lab.load and wrk and compare their throughput (needs wrk; builds or reuses the 3.13 interpreter)",
    )

    p = sub.add_parser(
        "report",
        help="re-render reports from existing raw results; with several runs, also a combined report",
        description="Re-render each run's report from its raw files. Given several runs (from one or several "
        "machines), also write a combined report: one column per run, machine kept as a dimension, and the "
        "run-to-run stability of the 3.13t / 3.13 ratios (cells moving more than 5% are flagged).",
        **common,
    )
    p.add_argument("runs", nargs="+", type=Path, help="run directories under results/")
    p.add_argument(
        "--into",
        type=Path,
        default=None,
        help="where the combined report goes (default: results/combined-<first>--<last>)",
    )
    p.add_argument(
        "--allow-mixed",
        action="store_true",
        help="combine runs whose interpreters differ in version or build profile (the difference is stated)",
    )
    _add_advise_parser(sub, common)
    _add_profile_parser(sub, common)
    return parser


# The profile's numbers on the command line (lab.advise.Profile's fields, per request).
ADVISE_NUMBERS = {
    "--cpu-ms": "server CPU ms per request of the sync version (required without --profile)",
    "--queries": "SQL queries per request",
    "--crossings": "sync/async crossings per request of the async version",
    "--upstream-calls": "external HTTP calls per request",
    "--upstream-ms": "latency of one external call, ms",
    "--fanout": "external calls made at once (1: one after the other)",
    "--db-connections": "database connections the async version opens per request (0 with a pool)",
    "--hold-ms": "time the request is held open without an upstream call (a stream, a long poll), ms",
}


def _add_advise_parser(sub: Any, common: dict[str, Any]) -> None:
    """``lab advise``: the explainable async/sync model of lab.advise, applied to a profile."""
    p = sub.add_parser(
        "advise",
        help="advise sync or async for an endpoint's profile, from a model fitted on measured runs",
        description="Per interpreter, predict each variant's throughput bound (CPU, or requests in flight: threads "
        "or connections over the time each request is held) at the best server shape the runs measured for it, with "
        "the async version's extra CPU per request (base, per crossing, per connection opened, per client call) "
        "fitted on the runs' async cells; print the expected winner (the variant with the higher bound; a margin "
        "under 10%% is said to be practically a tie), how sure (the share of held-out errors that keep that winner), "
        "the ratio with an interval from held-out errors (leave-one-mix-point-out), what binds each side, the nearest measured "
        "cells and the single change that would change or most move the outcome. Give --profile FILE.json (keys: "
        "cpu_ms, queries, crossings, upstream_calls, upstream_ms, fanout, db_connections, hold_ms, client) or the "
        "numbers.",
        **common,
    )
    p.add_argument("--run", action="append", required=True, type=Path, help="run directory (repeatable)")
    p.add_argument("--profile", dest="profile_file", type=Path, default=None, help="the profile as a JSON object")
    p.add_argument(
        "--from-profile",
        dest="profile_run",
        type=Path,
        default=None,
        metavar="RUN",
        help="a `lab profile` run directory: advise on each of its endpoints (3.13's measured profile)",
    )
    p.add_argument("--endpoint", default=None, help="with --from-profile: only this endpoint")
    p.add_argument(
        "--check",
        action="store_true",
        help="print the fit over every --run given and its held-out checks (the report's 'Advice model' section), "
        "instead of advice for a profile",
    )
    p.add_argument(
        "--check-on",
        action="append",
        default=[],
        type=Path,
        metavar="RUN",
        help="with --check: fit on the --run runs (all their points) and check the advice on this run's points "
        "instead, which the fit never saw (repeatable); a run measured after the outcome rule was set tests it too",
    )
    for flag, text in ADVISE_NUMBERS.items():
        p.add_argument(flag, dest=_dest(flag), default=None, metavar="N", help=text)
    # Checked by lab.advise.Profile against its Client type (importing it here would load pandas).
    p.add_argument("--client", default=None, help="async HTTP client of the external calls: httpx (default) or aiohttp")


def _add_profile_parser(sub: Any, common: dict[str, Any]) -> None:
    """``lab profile``: a user's own Django project measured on both interpreters (lab.profile)."""
    p = sub.add_parser(
        "profile",
        help="measure your own Django project's endpoints on both interpreters, WSGI and ASGI",
        description="Install the project's requirements on 3.13 and 3.13t (naming packages with no wheel or that "
        "re-enable the GIL), migrate a throwaway database, run the setup command, check every endpoint's status, "
        "count its work per request (CPU, SQL, crossings, connections), then measure it under gunicorn (WSGI) and "
        "uvicorn (ASGI, and the async 'after' path where given) in paired rounds; writes results/<run-id>/.",
        **common,
    )
    _add_interpreter_options(p)
    p.add_argument("--project", type=Path, required=True, help="the Django project's directory (on PYTHONPATH)")
    p.add_argument("--endpoints", type=Path, required=True, help="the endpoints TOML ([project] and [[endpoint]])")
    p.add_argument(
        "--database",
        default="sqlite",
        metavar="DB",
        help="sqlite (a throwaway file, default), postgres-local (a throwaway PostgreSQL) or "
        "postgres://USER@127.0.0.1:PORT/DB (loopback only; migrated and set up by the lab)",
    )
    p.add_argument("--rounds", type=int, default=3, help="paired rounds per slice (default: %(default)s)")
    p.add_argument("--duration", type=float, default=2.0, help="seconds per slice (default: %(default)s)")
    p.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds per slice (default: %(default)s)")
    p.add_argument("--connections", type=int, default=8, help="concurrent connections (default: %(default)s)")
    p.add_argument(
        "--stagger",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start each slice's connections spread over one request's wall time as the counting pass "
        "measured it (the endpoint's shortest over its forms and interpreters, so all its slices start "
        "alike; capped at 5 s, lab.profile.measure.MAX_STAGGER_S; the default), or with --no-stagger "
        "all at once, which against an endpoint that holds each request (an upstream call, a long poll) "
        "measures a start-up transient",
    )
    p.add_argument(
        "--count-requests",
        type=int,
        default=20,
        help="sequential requests per endpoint form in the counting pass (default: %(default)s)",
    )
    p.add_argument("--results-dir", type=Path, default=REPO_ROOT / "results", help="where run directories go")
    p.add_argument("--run-id", default=None, help="name of the run directory (default: UTC timestamp and 'profile')")


def resolve_interpreters(args: argparse.Namespace) -> list[Interpreter]:
    if bool(args.python_gil) != bool(args.python_ft):
        raise SpecError("--python-gil and --python-ft must be given together")
    if args.jobs is not None and args.jobs < 1:
        raise SpecError(f"--jobs must be >= 1, got {args.jobs}")
    if args.python_gil:
        log.warning(EXTERNAL_WARNING)
        return [use_external(args.python_gil, "gil"), use_external(args.python_ft, "ft")]
    gil, ft = load_interpreter(args.gil_spec), load_interpreter(args.ft_spec)
    diffs = spec_differences(gil, ft)
    if diffs and not args.allow_mismatch:
        raise SpecError(
            f"specs {gil.name} and {ft.name} differ in more than {'--disable-gil'}: {'; '.join(diffs)} "
            "(pass --allow-mismatch to build them anyway)"
        )
    mismatch = tuple(f"spec mismatch: {d}" for d in diffs)
    built = [ensure_built(s, args.profile, source=args.source, jobs=args.jobs) for s in (gil, ft)]
    if mismatch:
        for d in mismatch:
            log.warning(d)
        built = [Interpreter(**{**i.__dict__, "warnings": i.warnings + mismatch}) for i in built]
    return built


def cmd_interpreters(args: argparse.Namespace) -> int:
    interps = resolve_interpreters(args)
    table = Table(title="interpreters")
    for col in ("role", "spec", "version", "profile", "Py_GIL_DISABLED", "path"):
        table.add_column(col)
    for i in interps:
        table.add_row(i.role, i.spec_name, i.version, i.build_profile, str(int(i.py_gil_disabled)), str(i.python))
    table_console.print(table)
    return 0


def _plan_from_args(args: argparse.Namespace) -> Plan:
    """The plan file with the command line's overrides applied and checked."""
    from lab.measure import check_core_budgets

    plan = load_plan(args.plan)
    if args.cores is not None:
        budgets = _int_list(args.cores)
        if not budgets or min(budgets) < 1:
            raise SpecError(f"--cores {args.cores!r} must be core counts like 1 or 1,2")
        plan = dataclasses.replace(plan, core_budgets=budgets)
    check_core_budgets(plan.core_budgets)
    if args.server:
        plan = dataclasses.replace(plan, servers=tuple(dict.fromkeys(parse_server(s) for s in args.server)))
    if args.stack:
        plan = dataclasses.replace(plan, stack=args.stack)
    if args.variant:
        plan = dataclasses.replace(plan, variants=tuple(dict.fromkeys(args.variant)))
    if "http" in plan.tiers:
        check_servers_cover(plan.variants, plan.servers, "")
    if args.middleware:
        plan = dataclasses.replace(plan, middleware=tuple(dict.fromkeys(args.middleware)))
    if args.repeats is not None:
        if not 1 <= args.repeats <= MAX_REPEATS:
            raise SpecError(f"--repeats {args.repeats} is out of range; accepted: 1..{MAX_REPEATS}")
        plan = dataclasses.replace(plan, repeats=args.repeats)
    if args.duration is not None:
        low, high = DURATION_RANGE_S
        if not low <= args.duration <= high:  # also refuses nan and inf
            raise SpecError(f"--duration {args.duration:g} is out of range; accepted: {low:g}..{high:g} seconds")
        plan = dataclasses.replace(plan, http_duration=args.duration)
    if args.stagger is not None:
        plan = dataclasses.replace(plan, http_stagger=args.stagger)
    if args.connections is not None:
        counts = _int_list(args.connections)
        if not counts or not all(1 <= c <= MAX_CONNECTIONS for c in counts):
            raise SpecError(
                f"--connections {args.connections!r} must be connection counts like 8 or 8,32; "
                f"accepted: 1..{MAX_CONNECTIONS} each"
            )
        plan = dataclasses.replace(plan, http_concurrency=counts)
    return plan


def _int_list(text: str) -> tuple[int, ...]:
    """'1,2' -> (1, 2), duplicates dropped, order kept; () for anything that is not a list of integers."""
    try:
        return tuple(dict.fromkeys(int(part) for part in text.split(",") if part.strip()))
    except ValueError:
        return ()


def plan_table(plan: Plan, cells: list[Cell], *, with_crossings: bool) -> Table:
    """The plan's cells, one row per tier and mix point: what --dry-run shows and a run
    prints before it builds anything."""
    rows: dict[tuple[str, str, str], dict[str, dict[str, None]]] = {}
    for cell in cells:
        tags = [f"mw={cell.middleware}"] if cell.middleware != "default" else []
        tags += [f"cores={cell.cores}"] if cell.cores else []
        tags += [f"open={cell.rate_fraction:g}"] if cell.open_loop else []
        key = (cell.tier, cell.point.label, " ".join(tags))
        row = rows.setdefault(key, {"variant": {}, "server": {}, "conc": {}})
        row["variant"][cell.variant] = None
        row["server"][cell.server.spec if cell.server else "in-process (pyperf)"] = None
        row["conc"][str(cell.concurrency)] = None
    http_repeats = f"{plan.repeats} paired rounds × {plan.http_duration:g} s"
    if plan.http_min_requests:
        http_repeats = (
            f"{plan.repeats} paired rounds × {plan.http_duration:g}-{plan.http_max_duration:g} s "
            f"(≥{plan.http_min_requests} requests)"
        )
    handler_repeats = f"{plan.handler_processes} proc × {plan.handler_values} values"
    crossing_repeats = f"{plan.crossing_processes or plan.handler_processes} proc × {plan.handler_values} values"
    title = f"plan {plan.name}: {len(cells)} cells × 2 interpreters"
    out = Table(title=title)
    for col in ("tier", "mix point", "variant", "server", "concurrency", "repeats"):
        out.add_column(col)
    for (tier, point, extra), row in rows.items():
        out.add_row(
            tier,
            point + (f" ({extra})" if extra else ""),
            ", ".join(row["variant"]),
            ", ".join(row["server"]),
            ", ".join(row["conc"]),
            http_repeats if tier == "http" else handler_repeats,
        )
    if with_crossings and plan.crossing_concurrency:
        out.add_row(
            "crossings",
            "sync<->async hops, HTTP clients",
            "-",
            "in-process (pyperf)",
            ", ".join(map(str, plan.crossing_concurrency)),
            crossing_repeats,
        )
    return out


def _first_run_note(args: argparse.Namespace, final: Path) -> str:
    """One line on what happens before measuring, and where the report will be."""
    if args.python_gil:
        builds = "use the given interpreters"
    else:
        specs = [load_interpreter(args.gil_spec), load_interpreter(args.ft_spec)]
        missing = [s.name for s in specs if not (install_dir(s, args.profile) / "lab-build.json").is_file()]
        each = "~3 min" if args.profile == "fast" else "~25 min or more"
        home = str(Path.home())
        where = str(cache_root()).replace(home, "~", 1) if str(cache_root()).startswith(home) else str(cache_root())
        builds = (
            f"build {' and '.join(missing)} from source ({each} each on 2 cores, then cached in {where})"
            if missing
            else "reuse the cached interpreter builds"
        )
    with contextlib.suppress(ValueError):
        final = final.resolve().relative_to(Path.cwd())
    return (
        f"before measuring: {builds}, and install the workloads (~1 min unless cached); "
        f"report: {final}/report.md and report.html"
    )


def cmd_compare(args: argparse.Namespace) -> int:
    from lab.cells import cells_of, estimate_seconds
    from lab.envs import ensure_env
    from lab.measure import Runner
    from lab.report import render
    from lab.serve import check_port_free

    plan = _plan_from_args(args)
    database = parse_database(args.database)
    if getattr(args, "db_pool", False) and database.kind != "postgres":
        raise SpecError(
            f"--db-pool needs PostgreSQL (--database postgres-local or a postgres:// URL), not {args.database!r}"
        )
    cache = parse_cache(args.cache)
    only_mixes = None
    if args.mix:
        for name in args.mix:
            load_mix(name)  # a clear error for an unknown or invalid mix
        only_mixes = tuple(args.mix)
        if not cells_of(plan, only_mixes):
            raise SpecError(
                f"plan '{plan.name}' has no cells for mix {', '.join(args.mix)}; its mixes: {', '.join(plan.mixes)}"
            )
    if args.port is not None:
        check_port_free(args.port)
    run_id = args.run_id or f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{plan.name}"
    if "/" in run_id or run_id.startswith("."):
        raise SpecError(f"--run-id {run_id!r} must be a plain directory name")
    final = args.results_dir / run_id
    if final.exists():
        raise SpecError(f"results directory '{final}' already exists; pick another --run-id")
    cells = cells_of(plan, only_mixes)
    with_crossings = only_mixes is None
    estimate = estimate_seconds(plan, cells, 2, with_crossings=with_crossings)
    estimate_line = (
        f"plan [bold]{plan.name}[/]: {plan.description}; estimated {estimate / 60:.1f} min of measuring"
        + (", up to twice that where a point's rounds disagree and it is measured again" if plan.repeats > 1 and plan.remeasure_noisy else "")
    )
    if args.dry_run or not args.quiet:
        # Before any build: what will run, how long it takes, and where the report goes.
        out = table_console if args.dry_run else console
        out.print(plan_table(plan, cells, with_crossings=with_crossings))
        out.print(estimate_line, soft_wrap=True)
        out.print(_first_run_note(args, final), soft_wrap=True, highlight=False)
        if args.dry_run:
            return 0
    interps = resolve_interpreters(args)
    envs = [ensure_env(i, args.django) for i in interps]
    stage = args.results_dir / f".{run_id}.partial"
    if args.restart:
        shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True, exist_ok=True)
    fingerprint = {
        "plan": dataclasses.asdict(plan),
        "mixes": only_mixes,
        "database": args.database,
        "cache": args.cache,
        "db_pool": bool(getattr(args, "db_pool", False)),
        "django": args.django,
        "interpreters": [str(e.root) for e in envs],
    }
    started = time.monotonic()
    try:
        runner = Runner(
            plan,
            envs,
            stage,
            port=args.port,
            database=database,
            cache=cache,
            db_pool=bool(getattr(args, "db_pool", False)),
            django=args.django,
            only_mixes=only_mixes,
            fingerprint=fingerprint,
        )
        try:
            # What else the machine is doing, recorded with the run: a run started beside
            # a compile or another benchmark measures both.
            noise, busy = runner.check_noise()
            if busy:
                log.warning("the machine is busy (%s): results will carry that noise", noise)
            elif not args.quiet:
                console.print(f"machine before the run: {noise}", highlight=False)
            with progress_reporter(runner.total_steps(), quiet=args.quiet) as runner.on_progress:
                runner.on_progress = _stop_checked(runner.on_progress)
                records = runner.run()
            runner.write(plan_path_note=args.plan)
        finally:
            shutil.rmtree(runner.work, ignore_errors=True)
        stage.rename(final)
    except BaseException as exc:
        # The run directory appears whole or not at all. Finished cells stay in the hidden
        # staging directory's journal (complete lines only) so the same command resumes.
        kept = _journaled_cells(stage)
        if kept and not isinstance(exc, SpecError):
            # After SIGHUP the terminal may be gone: the message must not replace the interrupt.
            with contextlib.suppress(OSError):
                console.print(
                    f"{kept} finished cells kept in {stage}; rerun the same command to resume, or add --restart"
                )
        else:
            shutil.rmtree(stage, ignore_errors=True)
        raise
    table, _text = render(final)
    _print_summary(table)
    console.print(f"wrote {final} in {(time.monotonic() - started) / 60:.1f} min (estimate {estimate / 60:.1f} min)")
    skipped = [r for r in records if r.status == "skipped"]
    if skipped:
        reasons = sorted({r.reason for r in skipped})
        console.print(f"{len(skipped)} cells skipped: {'; '.join(reasons)}")
    bad = [r for r in records if r.status in ("failed", "invalid")]
    if bad:
        detail = "; ".join(f"{r.bench_name} on {r.interpreter}: {r.status} ({r.reason})" for r in bad[:3])
        raise MeasurementFailed(f"{len(bad)} of {len(records)} cells not ok: {detail}")
    return 0


def _journaled_cells(stage: Path) -> int:
    from lab.journal import JOURNAL_NAME

    path = stage / JOURNAL_NAME
    return max(0, len(path.read_text().splitlines()) - 1) if path.is_file() else 0


# How lab.measure.http names a step of a point measured again because its rounds disagreed.
REMEASURE_MARK = "again: noisy"


@contextlib.contextmanager
def progress_reporter(total: int, *, quiet: bool) -> Iterator[Callable[[str], None]]:
    """Yield a callback that advances a rich progress bar (cells done/total, ETA)."""
    if quiet:
        yield lambda _message: None
        return
    if not console.is_terminal:
        # Logs (CI, nohup): one line per step with an ETA instead of a redrawn bar.
        started_at = time.monotonic()
        done = [0]
        steps = [total]

        def log_line(message: str) -> None:
            elapsed = time.monotonic() - started_at
            # A point measured again for noise adds its steps to the total as they come.
            if REMEASURE_MARK in message:
                steps[0] += 1
            eta = f", ~{elapsed / done[0] * max(0, steps[0] - done[0]) / 60:.1f} min left" if done[0] else ""
            console.print(f"[{done[0] + 1}/{steps[0]}] {message}{eta}", highlight=False)
            done[0] += 1

        yield log_line
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=total)
        started = [False]

        def on_progress(message: str) -> None:
            # Called as each step starts: the previous one is then done.
            if REMEASURE_MARK in message:
                progress.update(task, total=(progress.tasks[0].total or total) + 1)
            if started[0]:
                progress.advance(task)
            started[0] = True
            progress.update(task, description=message)

        yield on_progress


def _print_summary(table: pd.DataFrame) -> None:
    out = Table(title="throughput (req/s, mean ± 95% CI) and p95 latency; ratio = 3.13t / 3.13")
    for col in (
        "tier",
        "mix",
        "variant",
        "server",
        "load",
        "conc",
        "3.13 req/s",
        "3.13 p95 ms",
        "3.13t req/s",
        "3.13t p95 ms",
        "3.13t/3.13",
        "status",
    ):
        out.add_column(
            col, justify="right" if col not in ("tier", "mix", "variant", "server", "load", "status") else "left"
        )
    from lab.report import _fmt

    for r in table.to_dict("records"):
        ratio = "—" if r["ft_over_gil"] != r["ft_over_gil"] else f"{r['ft_over_gil']:.2f}"
        out.add_row(
            r["tier"],
            r["point"],
            r["variant"],
            r["server"] + (f" cores={r['cores']}" if r["cores"] else ""),
            r["load"],
            str(r["concurrency"]),
            f"{_fmt(r['gil_rps'])} ± {_fmt(r['gil_ci'])}",
            _fmt(r["gil_p95_ms"], 2),
            f"{_fmt(r['ft_rps'])} ± {_fmt(r['ft_ci'])}",
            _fmt(r["ft_p95_ms"], 2),
            ratio + (" ⚠" if r["noisy"] else ""),
            f"{r['gil_status']}/{r['ft_status']}",
        )
    table_console.print(out)


def cmd_bench(args: argparse.Namespace) -> int:
    import tempfile

    from lab.bench import headroom, summarise

    # Optional until the bench parser grows these options: alternating rounds and generator processes.
    rounds, processes = getattr(args, "rounds", 3), getattr(args, "processes", 1)
    if not 0 < args.duration <= 60:
        raise SpecError(f"--duration {args.duration:g} is out of range; accepted: (0, 60] seconds")
    if any(not 1 <= c <= 1024 for c in args.connections):
        raise SpecError(f"--connections {args.connections} out of range; accepted: 1..1024")
    if not 1 <= rounds <= 20:
        raise SpecError(f"--rounds {rounds} is out of range; accepted: 1..20")
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as work:
        rows = headroom(tuple(args.connections), args.duration, Path(work), rounds=rounds, processes=processes)
    out = Table(
        title=f"load generator headroom against a trivial responder ({os.cpu_count()} CPUs, shared): "
        f"median (range) of {rounds} alternating rounds of {args.duration:g} s"
    )
    for col in ("tool", "connections", "req/s", "client CPU µs/req", "responder CPU µs/req", "p50 ms"):
        out.add_column(col, justify="left" if col == "tool" else "right")
    for r in summarise(rows):
        out.add_row(
            r.tool,
            str(r.connections),
            f"{r.rate_rps:,.0f} ({r.rate_range[0]:,.0f}–{r.rate_range[1]:,.0f})",
            f"{r.client_cpu_us_per_req:.1f} ({r.client_cpu_range[0]:.1f}–{r.client_cpu_range[1]:.1f})",
            f"{r.responder_cpu_us_per_req:.1f}",
            f"{r.p50_ms:.3f}",
        )
    table_console.print(out)
    if args.cell:
        _bench_cell(args.duration, rounds=max(rounds, 5), processes=processes)
    return 0


def _bench_cell(duration: float, *, rounds: int = 5, processes: int = 1) -> None:
    import tempfile

    from lab.bench import CELL_TARGET, agreement, cell_ratio
    from lab.envs import ensure_env

    if shutil.which("wrk") is None:
        raise SpecError("--cell needs wrk on PATH (Debian: apt-get install wrk)")
    env = ensure_env(ensure_built(load_interpreter("cpython-3.13"), "fast"))
    with tempfile.TemporaryDirectory(prefix="lab-bench-cell-") as work:
        rows = agreement(env, 32, duration, Path(work), rounds=rounds, processes=processes)
    out = Table(
        title="one HTTP cell through both tools: cpu-heavy, sync, gunicorn gthread 1x8, 32 connections, 3.13 "
        f"({rounds} alternating rounds of {duration:g} s)"
    )
    for col in ("round", "tool", "req/s", "p50 ms", "client CPU µs/req"):
        out.add_column(col, justify="left" if col == "tool" else "right")
    for r in rows:
        out.add_row(str(r.round), r.tool, f"{r.rate_rps:,.1f}", f"{r.p50_ms:.2f}", f"{r.client_cpu_us_per_req:.1f}")
    table_console.print(out)
    ratio = cell_ratio(rows)
    verdict = "within" if ratio.within_target else "outside"
    spread = f"{min(ratio.per_round):.3f}–{max(ratio.per_round):.3f}"
    console.print(
        f"lab.load / wrk throughput: median {ratio.median:.3f} over {len(ratio.per_round)} rounds "
        f"(range {spread}; {verdict} the {CELL_TARGET:.0%} target)"
    )


def cmd_report(args: argparse.Namespace) -> int:
    from lab.report import render

    for run in args.runs:
        if not (run / "cells.json").is_file():
            raise SpecError(f"'{run}' is not a lab run directory (no cells.json)")
    if len(args.runs) > 1:
        from lab.merge import check_compatible

        check_compatible(args.runs, args.allow_mixed)  # refuse before writing anything
    for run in args.runs:
        table, _text = render(run)
        console.print(f"[bold]{run}[/]")
        _print_summary(table)
    if len(args.runs) > 1:
        from lab.merge import render_combined

        into = args.into or args.runs[0].parent / f"combined-{args.runs[0].name}--{args.runs[-1].name}"
        text = render_combined(args.runs, into, allow_mixed=args.allow_mixed)
        stability = [line for line in text.splitlines() if "shared cells agree" in line]
        console.print(f"wrote {into / 'report.md'}" + (f": {stability[0]}" if stability else ""))
    return 0


def cmd_advise(args: argparse.Namespace) -> int:
    from lab.advise import (
        Profile,
        advice_lines,
        build_models,
        fit_lines,
        load_values,
        number,
        profile_from,
        profiles_from_run,
        tested,
    )

    given = {flag: getattr(args, _dest(flag)) for flag in ADVISE_NUMBERS if getattr(args, _dest(flag)) is not None}
    sources = [bool(args.profile_file), bool(args.profile_run), bool(given or args.client)]
    if args.check:
        if any(sources):
            raise SpecError("--check prints the fit's held-out checks; give it without a profile")
        seen = {run.resolve() for run in args.run}
        overlap = [run for run in args.check_on if run.resolve() in seen]
        if overlap:
            raise SpecError(f"--check-on {overlap[0]} is also a --run: the fit would have seen it")
        models = build_models(load_values(args.run))
        if args.check_on:
            models = tested(models, load_values(args.check_on))
        print("\n".join(fit_lines(models)).lstrip("\n"))
        return 0
    if args.check_on:
        raise SpecError("--check-on needs --check")
    if sum(sources) > 1:
        raise SpecError("give one of --profile, --from-profile or the numbers, not more")
    if args.endpoint is not None and args.profile_run is None:
        raise SpecError("--endpoint needs --from-profile RUN")
    profiles: dict[str, Profile] = {}
    if args.profile_run is not None:
        profiles = profiles_from_run(args.profile_run, args.endpoint)
    elif args.profile_file is not None:
        profiles = {"": Profile.from_json(args.profile_file)}
    elif "--cpu-ms" not in given:
        raise SpecError("give --profile FILE.json, --from-profile RUN or the profile's numbers (at least --cpu-ms)")
    else:
        values = {_dest(flag)[len("advise_") :]: number(flag, text) for flag, text in given.items()}
        profiles = {"": profile_from(values, args.client)}
    models = build_models(load_values(args.run))
    for name, profile in profiles.items():
        if name:
            numbers = ", ".join(f"{k} {v:g}" for k, v in vars(profile).items() if k != "client" and v)
            print(f"== {name}: {numbers}")
        print("\n".join(advice_lines(models, profile)))
    return 0


def _dest(flag: str) -> str:
    return "advise_" + flag.removeprefix("--").replace("-", "_")


def cmd_profile(args: argparse.Namespace) -> int:
    from lab.profile import ProfilePlan, check_before_building, load_profile_spec, run_profile

    spec = load_profile_spec(args.endpoints, args.project)
    plan = ProfilePlan(
        rounds=args.rounds,
        duration_s=args.duration,
        warmup_s=args.warmup,
        connections=args.connections,
        count_requests=args.count_requests,
        stagger=args.stagger,
    )
    run_id = args.run_id or f"{datetime.now(UTC):%Y%m%d-%H%M%S}-profile"
    check_before_building(plan, args.database, args.results_dir, run_id)  # bad options fail before any build
    interps = resolve_interpreters(args)
    final, cells = run_profile(spec, interps, plan, database=args.database, results_dir=args.results_dir, run_id=run_id)
    console.print(f"wrote {final / 'report.md'}")
    bad = [c for c in cells if c.status != "ok"]
    if bad:
        detail = "; ".join(f"{c.endpoint} {c.form} on {c.interpreter}: {c.status} ({c.reason})" for c in bad[:3])
        raise MeasurementFailed(f"{len(bad)} of {len(cells)} cells not ok: {detail}")
    return 0


# The stop signal received, if any. The handler raises Interrupted wherever the main thread
# is, and where that is a context that swallows exceptions (a logging lock's release during
# garbage collection, seen in CI: "Exception ignored in: <function _releaseLock>"), the run
# would go on to the end and exit 0; each measuring step checks this first, so it stops there.
_STOPPING: list[int] = []


def _stop_checked(on_progress: Callable[[str], None]) -> Callable[[str], None]:
    """``on_progress`` that first raises Interrupted for a stop signal already received."""

    def checked(message: str) -> None:
        if _STOPPING:
            raise Interrupted(_STOPPING[0])
        on_progress(message)

    return checked


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` in the main thread, so each runs the
    clean-up Ctrl-C runs.

    SIGINT is handled even when inherited as ignored: a shell starts a script's background
    jobs that way, and the lab would then run to the end through a Ctrl-C or a test's
    SIGINT. (Children then get SIGINT's default back at exec, which the upstream simulator
    and PostgreSQL need to stop on it.) An ignored SIGHUP stays ignored: that is what
    ``nohup`` asks for. A second signal while stopping is reported and otherwise ignored,
    so the clean-up is not cut short; SIGKILL still leaves nothing behind (``lab.proc``).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = _STOPPING
    stopping.clear()

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stopping:
            with contextlib.suppress(OSError):
                os.write(2, f"lab: {signal.Signals(signum).name} ignored while stopping\n".encode())
            return
        stopping.append(signum)
        raise Interrupted(signum)

    previous: dict[int, signal.Handlers | Callable[[int, FrameType | None], object] | int | None] = {}
    for signum in STOP_SIGNALS:
        if signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
            continue
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, signal.SIG_DFL if old is None else old)


def _say(line: str) -> None:
    with contextlib.suppress(OSError):  # stderr may be a closed terminal (SIGHUP)
        print(line, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
    )
    commands = {"interpreters": cmd_interpreters, "compare": cmd_compare, "report": cmd_report, "bench": cmd_bench}
    commands["advise"] = cmd_advise
    commands["profile"] = cmd_profile
    with stop_signals():
        try:
            # Every process group a command starts is killed when the lab exits, whichever way.
            with guardian():
                return commands[args.command](args)
        except KeyboardInterrupt as exc:
            signum = exc.signum if isinstance(exc, Interrupted) else int(signal.SIGINT)
            by = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
            _say(f"error: interrupted{by}")
            return 128 + signum
        except LabError as exc:
            _say(f"error: {exc}")
            if os.environ.get("LAB_DEBUG"):
                raise
            return exc.exit_code
