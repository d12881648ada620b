"""Measure a user's project: every endpoint form on both interpreters, in paired rounds.

The lab's HTTP tier rule (``lab.measure.http``): every server being compared is up at
once (per interpreter: the WSGI and the ASGI server, counters off), and each round visits
every (interpreter, endpoint, form) slice once in an order shuffled per round with a fixed
seed, so the VM's drift lands on both sides of every ratio; ratios are formed per round.
Each slice is ``python -m lab.load`` (closed loop, keep-alive) for ``duration_s`` after
``warmup_s``, with the server's process tree sampled for CPU from outside. Its connections
start spread over one request's wall time as the counting pass measured it (``stagger``: the
shortest over the endpoint's forms and interpreters, the part they all wait, so every slice of
an endpoint starts alike; capped at ``MAX_STAGGER_S``): a user's endpoint has no declared wait, and
connections started together against one that holds each request (an upstream call, a long
poll) reach it in bursts whose effect depends on the warm-up (README, "A synchronized start
is a transient").

After the servers stopped, each server's GIL reports give its verdict (``lab.gilstate``,
the number expected from the shape by ``lab.servers.expected_gil_reports``), and each
round is judged as the lab judges its HTTP cells (``lab.measure.http.judge_load``). A
free-threaded interpreter whose packages re-enable the GIL on import has every cell
invalid, with the package named.
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import SpecError
from lab.gilstate import read_reports, verdict
from lab.measure.context import LAB_ROOT
from lab.measure.http import judge_load
from lab.proc import ManagedProcess, child_env, pinned_to
from lab.profile.prepare import Prepared, Services, env_vars, serving
from lab.profile.spec import Endpoint, Form, ProfileSpec
from lab.resources import TreeSampler
from lab.servers import HOST, ServerConfig, expected_gil_reports, parse_server

# A slow endpoint's connections start over at most this long (lab.load accepts up to 60 s).
MAX_STAGGER_S = 5.0


@dataclass(frozen=True, kw_only=True)
class ProfilePlan:
    """How long and how hard each slice is measured, and the server shapes."""

    rounds: int = 3
    duration_s: float = 2.0
    warmup_s: float = 0.5
    connections: int = 8
    count_requests: int = 20
    # Connections start spread over one counted request's wall time (False: all at once).
    stagger: bool = True
    # One process each, the shapes the lab's plans use as their baseline: gthread 1x8
    # gives sync Django its threads, one uvicorn worker is one event loop.
    wsgi: ServerConfig = field(default_factory=lambda: parse_server("gunicorn-gthread:1x8"))
    asgi: ServerConfig = field(default_factory=lambda: parse_server("uvicorn:1"))

    @property
    def servers(self) -> dict[str, ServerConfig]:
        return {"wsgi": self.wsgi, "asgi": self.asgi}

    def summary(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "connections": self.connections,
            "count_requests": self.count_requests,
            "stagger": self.stagger,
            "stagger_max_s": MAX_STAGGER_S if self.stagger else 0.0,
            "wsgi_server": self.wsgi.spec,
            "asgi_server": self.asgi.spec,
        }


@dataclass
class Cell:
    """One endpoint form on one interpreter: its rounds and, at the end, its verdict."""

    interpreter: str
    endpoint: str
    form: Form
    path: str
    server: str
    status: str = "ok"
    reason: str = ""
    rounds: list[dict[str, Any]] = field(default_factory=list)
    gil: dict[str, Any] = field(default_factory=dict)


def stagger_s(plan: ProfilePlan, endpoint: str, counts: dict[str, dict[str, dict[str, dict[str, float]]]]) -> float:
    """Seconds the connections of ``endpoint``'s slices take to start: the shortest wall time
    per request the counting pass measured for it (``counts``: interpreter -> endpoint -> form
    -> per request) over its forms and interpreters, the same for all of them so that WSGI and
    ASGI, 3.13 and 3.13t start alike; 0 with ``plan.stagger`` off or no count."""
    walls = [form["wall_ms"] for by_endpoint in counts.values() for form in by_endpoint.get(endpoint, {}).values()]
    if not plan.stagger or not walls:
        return 0.0
    return min(MAX_STAGGER_S, max(0.0, min(walls) / 1000))


def load_command(
    endpoint: Endpoint, form: Form, port: int, plan: ProfilePlan, cookie: str, stagger: float = 0.0
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "lab.load",
        "--url",
        f"http://{HOST}:{port}{endpoint.path_of(form)}",
        "--connections",
        str(plan.connections),
        "--duration",
        f"{plan.duration_s:.3f}",
        "--warmup",
        f"{plan.warmup_s:.3f}",
        "--method",
        endpoint.method,
    ]
    if stagger > 0:
        cmd += ["--stagger-ms", f"{stagger * 1000:.1f}"]
    if endpoint.body:
        cmd += ["--body", endpoint.body]
    for line in endpoint.request_headers(cookie):
        cmd += ["--header", line]
    return cmd


def round_record(load: dict[str, Any], cpu_s: float, endpoint: Endpoint) -> dict[str, Any]:
    """One slice's lab.load output and server CPU -> the round's figures (judge_load's keys)."""
    # Non-2xx answers are errors unless the endpoint is expected to answer one (a redirect).
    unexpected = load["non_2xx"] if 200 <= endpoint.status < 300 else 0
    lat = load["latency_us"]
    total = load["requests"] + load.get("warmup", 0)
    return {
        "throughput_rps": round(load["throughput_rps"], 3),
        "latency_p50_ms": lat["p50"] / 1000,
        "latency_p95_ms": lat["p95"] / 1000,
        # The sampler spans the warm-up too: divide by every request it saw.
        "cpu_ms_per_req": round(1000 * cpu_s / max(1, total), 4),
        "load_requests": load["requests"],
        "load_ok": load["ok"] + (load["non_2xx"] - unexpected),
        "load_errors": load["errors"] + unexpected,
        "load_error_samples": "; ".join(load["error_samples"]) or "-",
        "load_busy": round(load["cpu_s"] / load["wall_s"], 4) if load.get("wall_s") else 0.0,
        "load_stagger_ms": round(1000 * load.get("stagger_s", 0.0), 1),
    }


def measure_slice(
    cell: Cell,
    endpoint: Endpoint,
    server: ManagedProcess,
    port: int,
    plan: ProfilePlan,
    cookie: str,
    stagger: float = 0.0,
) -> None:
    if not server.alive():
        cell.status, cell.reason = "failed", f"server died (exit {server.proc.returncode}): {server.log_tail(3)}"
        return
    sampler = TreeSampler(server.pid)
    sampler.start()
    try:
        done = subprocess.run(
            load_command(endpoint, cell.form, port, plan, cookie, stagger),
            capture_output=True,
            text=True,
            timeout=stagger + plan.warmup_s + plan.duration_s + 60,
            check=False,
            env=child_env({"PYTHONPATH": str(LAB_ROOT)}),
            preexec_fn=pinned_to(None),
        )
    finally:
        usage = sampler.stop()
    if done.returncode != 0:
        cell.status, cell.reason = "failed", f"load generator exited {done.returncode}: {done.stderr.strip()[-200:]}"
        return
    cell.rounds.append(round_record(json.loads(done.stdout), usage.cpu_s, endpoint))


def measure(
    spec: ProfileSpec,
    prepared: list[Prepared],
    services: Services,
    plan: ProfilePlan,
    work: Path,
    counts: dict[str, dict[str, dict[str, dict[str, float]]]],
) -> list[Cell]:
    """Every endpoint form on every interpreter, ``plan.rounds`` paired rounds; ``counts``
    (interpreter -> endpoint -> form -> per request, from the counting pass) sets how long each
    slice's connections take to start."""
    endpoints = {e.name: e for e in spec.endpoints}
    by_name = {p.name: p for p in prepared}
    cells = [
        Cell(
            interpreter=p.name,
            endpoint=e.name,
            form=form,
            path=e.path_of(form),
            server=plan.servers["wsgi" if form == "wsgi" else "asgi"].spec,
        )
        for p in prepared
        for e in spec.endpoints
        for form in e.forms
    ]
    staggers = {e.name: stagger_s(plan, e.name, counts) for e in spec.endpoints}
    running: dict[tuple[str, str], tuple[ManagedProcess, int]] = {}
    gil_dirs: dict[tuple[str, str], Path] = {}
    with contextlib.ExitStack() as stack:
        for p in prepared:
            for interface, config in plan.servers.items():
                gil_dir = work / p.name / f"gil-measure-{interface}"
                gil_dir.mkdir(parents=True, exist_ok=True)
                variables = env_vars(spec, p, services, gil_dir, count=False)
                log_path = work / "logs" / f"measure-{p.name}-{interface}.log"
                running[(p.name, interface)] = stack.enter_context(serving(config, spec, p, variables, log_path))
                gil_dirs[(p.name, interface)] = gil_dir
        for repeat in range(plan.rounds):
            order = list(cells)
            random.Random(f"profile/{repeat}").shuffle(order)
            for cell in order:
                if cell.status == "failed":
                    continue
                server, port = running[(cell.interpreter, "wsgi" if cell.form == "wsgi" else "asgi")]
                measure_slice(
                    cell,
                    endpoints[cell.endpoint],
                    server,
                    port,
                    plan,
                    by_name[cell.interpreter].cookie,
                    staggers[cell.endpoint],
                )
    # Every server is stopped now: each of its processes has written its final GIL report.
    for cell in cells:
        judge(cell, by_name[cell.interpreter], plan, gil_dirs)
    return cells


def judge(cell: Cell, prepared: Prepared, plan: ProfilePlan, gil_dirs: dict[tuple[str, str], Path]) -> None:
    interface = "wsgi" if cell.form == "wsgi" else "asgi"
    free_threaded = prepared.env.interpreter.role == "ft"
    expected = expected_gil_reports(plan.servers[interface], free_threaded=free_threaded)
    judged = verdict(
        read_reports(gil_dirs[(cell.interpreter, interface)]), free_threaded=free_threaded, expected=expected
    )
    cell.gil = judged.metadata()
    if cell.status != "ok":
        return
    if not cell.rounds:
        cell.status, cell.reason = "failed", "no round measured"
        return
    for record in cell.rounds:
        status, reason = judge_load(record, judged)
        if status != "ok":
            cell.status, cell.reason = status, reason
            if status == "failed":
                return
    if prepared.check.invalid_reason:
        cell.status, cell.reason = "invalid", prepared.check.invalid_reason


def check_plan(plan: ProfilePlan) -> None:
    if not 1 <= plan.rounds <= 20:
        raise SpecError(f"--rounds {plan.rounds} is out of range; accepted: 1..20")
    if not 0.1 <= plan.duration_s <= 600:
        raise SpecError(f"--duration {plan.duration_s:g} is out of range; accepted: 0.1..600 seconds")
    if not 1 <= plan.connections <= 1024:
        raise SpecError(f"--connections {plan.connections} is out of range; accepted: 1..1024")
    if not 1 <= plan.count_requests <= 1000:
        raise SpecError(f"--count-requests {plan.count_requests} is out of range; accepted: 1..1000")
