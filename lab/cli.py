"""Command line: ``python -m lab {interpreters,compare,report}``.

The only place that catches ``LabError``: it prints one ``error: ...`` line on stderr and
exits with the error's code (130 on Ctrl-C). Choices are built from the ``Literal``
types in ``lab.spec`` so the CLI and the specs never drift.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from lab import __version__

if TYPE_CHECKING:
    import pandas as pd
from lab.build import EXTERNAL_WARNING, SOURCE_ENV, Interpreter, ensure_built, use_external
from lab.cache import parse_cache
from lab.database import parse_database
from lab.errors import LabError, MeasurementFailed, SpecError
from lab.servers import SERVER_FORMS, STACKS, parse_server
from lab.spec import (
    BUILD_PROFILES,
    DJANGO_LINES,
    MIDDLEWARES,
    REPO_ROOT,
    VARIANTS,
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
EXIT_INTERRUPTED = 130


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
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings, errors and the final table")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("interpreters", help="build (or reuse) and verify both interpreters")
    _add_interpreter_options(p)

    p = sub.add_parser(
        "compare",
        help="build if missing, install workloads, measure both interpreters, report",
        description="Run a measurement plan on both interpreters and print the comparison table.",
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

    p = sub.add_parser(
        "bench",
        help="load generator headroom against a trivial responder (and wrk, where installed)",
        description="Measure the lab's load generator: its maximum rate and CPU cost per request against a "
        "trivial responder, cross-checked with wrk where it is installed.",
    )
    p.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32], help="connection counts")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (max 60)")
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
    return parser


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


def cmd_compare(args: argparse.Namespace) -> int:
    from lab.cells import cells_of, estimate_seconds
    from lab.envs import ensure_env
    from lab.measure import Runner, check_core_budgets
    from lab.report import render
    from lab.serve import check_port_free

    plan = load_plan(args.plan)
    database = parse_database(args.database)
    cache = parse_cache(args.cache)
    if args.cores is not None:
        try:
            budgets = tuple(int(c) for c in args.cores.split(",") if c.strip())
        except ValueError:
            budgets = ()
        if not budgets or min(budgets) < 1:
            raise SpecError(f"--cores {args.cores!r} must be core counts like 1 or 1,2")
        plan = dataclasses.replace(plan, core_budgets=tuple(dict.fromkeys(budgets)))
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
        "django": args.django,
        "interpreters": [str(e.root) for e in envs],
    }
    estimate = estimate_seconds(plan, cells_of(plan, only_mixes), len(envs), with_crossings=only_mixes is None)
    console.print(f"plan [bold]{plan.name}[/]: {plan.description}; estimated {estimate / 60:.1f} min")
    started = time.monotonic()
    try:
        runner = Runner(
            plan,
            envs,
            stage,
            port=args.port,
            database=database,
            cache=cache,
            django=args.django,
            only_mixes=only_mixes,
            fingerprint=fingerprint,
        )
        try:
            with progress_reporter(runner.total_steps(), quiet=args.quiet) as runner.on_progress:
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
            console.print(f"{kept} finished cells kept in {stage}; rerun the same command to resume, or add --restart")
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

        def log_line(message: str) -> None:
            elapsed = time.monotonic() - started_at
            eta = f", ~{elapsed / done[0] * (total - done[0]) / 60:.1f} min left" if done[0] else ""
            console.print(f"[{done[0] + 1}/{total}] {message}{eta}", highlight=False)
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

    from lab.bench import headroom

    if not 0 < args.duration <= 60:
        raise SpecError(f"--duration {args.duration:g} is out of range; accepted: (0, 60] seconds")
    if any(not 1 <= c <= 1024 for c in args.connections):
        raise SpecError(f"--connections {args.connections} out of range; accepted: 1..1024")
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as work:
        rows = headroom(tuple(args.connections), args.duration, Path(work))
    out = Table(title=f"load generator headroom against a trivial responder ({os.cpu_count()} CPUs, shared)")
    for col in ("tool", "connections", "req/s", "client CPU µs/req", "responder CPU µs/req", "p50 ms"):
        out.add_column(col, justify="left" if col == "tool" else "right")
    for r in rows:
        out.add_row(
            r.tool,
            str(r.connections),
            f"{r.rate_rps:,.0f}",
            f"{r.client_cpu_us_per_req:.1f}",
            f"{r.responder_cpu_us_per_req:.1f}",
            f"{r.p50_ms:.3f}",
        )
    table_console.print(out)
    if args.cell:
        _bench_cell(args.duration)
    return 0


def _bench_cell(duration: float) -> None:
    import tempfile

    from lab.bench import agreement
    from lab.envs import ensure_env

    if shutil.which("wrk") is None:
        raise SpecError("--cell needs wrk on PATH (Debian: apt-get install wrk)")
    env = ensure_env(ensure_built(load_interpreter("cpython-3.13"), "fast"))
    with tempfile.TemporaryDirectory(prefix="lab-bench-cell-") as work:
        rows = agreement(env, 32, duration, Path(work))
    out = Table(title="one HTTP cell through both tools: cpu-heavy, sync, gunicorn gthread 1x8, 32 connections, 3.13")
    for col in ("round", "tool", "req/s", "p50 ms"):
        out.add_column(col, justify="left" if col == "tool" else "right")
    for i, r in enumerate(rows):
        out.add_row(str(i // 2 + 1), r.tool, f"{r.rate_rps:,.1f}", f"{r.p50_ms:.2f}")
    table_console.print(out)
    lab_rates = [r.rate_rps for r in rows if r.tool == "lab.load"]
    wrk_rates = [r.rate_rps for r in rows if r.tool == "wrk"]
    ratio = (sum(lab_rates) / len(lab_rates)) / (sum(wrk_rates) / len(wrk_rates))
    verdict = "within" if abs(ratio - 1) <= 0.10 else "outside"
    console.print(f"lab.load / wrk throughput: {ratio:.3f} ({verdict} the 10% target)")


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
    )
    commands = {"interpreters": cmd_interpreters, "compare": cmd_compare, "report": cmd_report, "bench": cmd_bench}
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if os.environ.get("LAB_DEBUG"):
            raise
        return exc.exit_code
