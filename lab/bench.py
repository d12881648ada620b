"""Benchmarks of the lab's own tools (``lab bench``): is the load generator cheap and honest enough?

Headroom: drives the upstream simulator at zero latency (a trivial responder) with the lab's
load generator and with ``wrk`` (where installed) at a few connection counts, and reports
each tool's rate and its own CPU cost per request. ``lab bench --cell``: one real HTTP cell
(cpu-heavy, sync, gunicorn gthread 1x8, 32 connections, CPython 3.13) through both tools;
where the Django server, not the client, is the bottleneck their throughput should agree
within 5%.

Both measurements run in alternating rounds, the tool that goes first swapping every round,
and report the median with the range over rounds: the VM drifts by ~10% within minutes, so
one back-to-back pair can put drift into the comparison. The figure that matters for a
cell, the load generator's CPU share against the server's, is recorded with every HTTP cell
and summarised in each report.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from lab.envs import WORKLOADS_DIR, WorkloadEnv
from lab.errors import LabError
from lab.proc import capture, child_env, managed, run_logged, tail
from lab.serve import free_port, responds_tcp, running_server
from lab.servers import HOST, parse_server
from lab.spec import load_mix

LAB_ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("lab.load", "wrk")
CELL_TARGET = 0.05  # lab.load's throughput within 5% of wrk's on the Django cell
LAB_WARMUP_S = 0.5


@dataclass(frozen=True, kw_only=True)
class HeadroomRow:
    tool: str
    connections: int
    round: int
    rate_rps: float
    client_cpu_us_per_req: float
    responder_cpu_us_per_req: float
    p50_ms: float


@dataclass(frozen=True, kw_only=True)
class Summary:
    """Median over rounds of one tool at one connection count, with the range."""

    tool: str
    connections: int
    rounds: int
    rate_rps: float
    rate_range: tuple[float, float]
    client_cpu_us_per_req: float
    client_cpu_range: tuple[float, float]
    responder_cpu_us_per_req: float
    p50_ms: float


@dataclass(frozen=True, kw_only=True)
class AgreementRow:
    tool: str
    round: int
    rate_rps: float
    p50_ms: float
    client_cpu_us_per_req: float


@dataclass(frozen=True, kw_only=True)
class CellRatio:
    """lab.load / wrk throughput on the cell: per round, and its median and range."""

    per_round: tuple[float, ...]
    median: float

    @property
    def within_target(self) -> bool:
        return abs(self.median - 1) <= CELL_TARGET


def order(round_: int) -> tuple[str, ...]:
    """The tools in the order they run in this round: who goes first alternates."""
    return TOOLS if round_ % 2 == 0 else TOOLS[::-1]


def parse_wrk(stdout: str) -> tuple[float, int, float]:
    """(requests/s, requests completed, p50 ms) from wrk's ``--latency`` output."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", stdout)
    count = re.search(r"(\d+) requests in ", stdout)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", stdout)
    if rate is None or count is None:
        raise LabError(f"wrk printed no request rate: {stdout.strip()[-200:]!r}")
    p50_ms = float(p50.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)] if p50 else float("nan")
    return float(rate.group(1)), int(count.group(1)), p50_ms


def summarise(rows: Sequence[HeadroomRow]) -> list[Summary]:
    """One row per (tool, connections), in the order they first ran."""
    groups: dict[tuple[str, int], list[HeadroomRow]] = {}
    for r in rows:
        groups.setdefault((r.tool, r.connections), []).append(r)
    out = []
    for (tool, conns), group in groups.items():
        rates = [r.rate_rps for r in group]
        cpus = [r.client_cpu_us_per_req for r in group]
        out.append(
            Summary(
                tool=tool,
                connections=conns,
                rounds=len(group),
                rate_rps=statistics.median(rates),
                rate_range=(min(rates), max(rates)),
                client_cpu_us_per_req=statistics.median(cpus),
                client_cpu_range=(min(cpus), max(cpus)),
                responder_cpu_us_per_req=statistics.median(r.responder_cpu_us_per_req for r in group),
                p50_ms=statistics.median(r.p50_ms for r in group),
            )
        )
    return sorted(out, key=lambda s: (s.connections, TOOLS.index(s.tool) if s.tool in TOOLS else len(TOOLS)))


def cell_ratio(rows: Sequence[AgreementRow]) -> CellRatio:
    """lab.load / wrk per round (the two ran minutes apart at most), and the median of those."""
    by_round: dict[int, dict[str, float]] = {}
    for r in rows:
        by_round.setdefault(r.round, {})[r.tool] = r.rate_rps
    ratios = tuple(
        tools["lab.load"] / tools["wrk"]
        for _round, tools in sorted(by_round.items())
        if tools.get("wrk") and "lab.load" in tools
    )
    if not ratios:
        raise LabError("no round measured both lab.load and wrk")
    return CellRatio(per_round=ratios, median=statistics.median(ratios))


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _wrk(url: str, connections: int, duration: float) -> tuple[float, float, float] | None:
    """(rate, client CPU µs per request, p50 ms) from wrk, or None if wrk is not installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    # wrk is our child: its CPU time comes back through RUSAGE_CHILDREN once it is reaped.
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", url]
    done = capture(cmd, env=child_env(), timeout=duration + 30)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise LabError(f"wrk failed: {done.stderr.strip()[-200:]}")
    rate, requests, p50_ms = parse_wrk(done.stdout)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return rate, 1e6 * cpu / max(1, requests), p50_ms


def _lab_load(url: str, connections: int, duration: float, processes: int = 1) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "lab.load", "--url", url, "--connections", str(connections)]
    cmd += ["--duration", str(duration), "--warmup", str(LAB_WARMUP_S), "--processes", str(processes)]
    done = capture(cmd, env=child_env({"PYTHONPATH": str(LAB_ROOT)}), timeout=duration + 60)
    if done.returncode != 0:
        raise LabError(f"load generator failed: {done.stderr.strip()[-200:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _lab_cpu_us_per_req(result: dict[str, Any]) -> float:
    # cpu_s covers warm-up and measured requests alike (histograms are built after it).
    return 1e6 * float(result["cpu_s"]) / max(1, int(result["requests"]) + int(result["warmup"]))


def headroom(
    connections: tuple[int, ...], duration: float, work: Path, *, rounds: int = 3, processes: int = 1
) -> list[HeadroomRow]:
    """Every tool at every connection count, ``rounds`` times, alternating who goes first."""
    port = free_port()
    rows: list[HeadroomRow] = []
    cmd = [sys.executable, "-m", "lab.upstream", "--port", str(port)]
    env = child_env({"PYTHONPATH": str(LAB_ROOT)})
    with managed(cmd, name="trivial responder", log_path=work / "responder.log", env=env, stop_signal=2) as responder:
        responder.wait_ready(lambda: responds_tcp(port), timeout=30)
        url = f"http://{HOST}:{port}/?ms=0"
        for round_ in range(rounds):
            for conns in connections:
                for tool in order(round_):
                    before = _cpu(responder.pid)
                    if tool == "lab.load":
                        result = _lab_load(url, conns, duration, processes)
                        served = max(1, result["requests"] + result["warmup"])
                        rate, client_cpu = result["throughput_rps"], _lab_cpu_us_per_req(result)
                        p50 = result["latency_us"]["p50"] / 1000
                    else:
                        measured = _wrk(url, conns, duration)
                        if measured is None:
                            continue
                        rate, client_cpu, p50 = measured
                        served = max(1, round(rate * duration))
                    rows.append(
                        HeadroomRow(
                            tool=tool,
                            connections=conns,
                            round=round_ + 1,
                            rate_rps=rate,
                            client_cpu_us_per_req=client_cpu,
                            responder_cpu_us_per_req=1e6 * (_cpu(responder.pid) - before) / served,
                            p50_ms=p50,
                        )
                    )
    return rows


def agreement(
    env: WorkloadEnv, connections: int, duration: float, work: Path, *, rounds: int = 5, processes: int = 1
) -> list[AgreementRow]:
    """The same HTTP cell (cpu-heavy, sync, gunicorn gthread 1x8) through lab.load and wrk in
    alternating rounds, so the two tools' throughput can be compared where the server is the
    bottleneck. Empty when wrk is not installed."""
    if shutil.which("wrk") is None:
        return []
    point = load_mix("cpu-heavy").points()[0]
    vars_ = {
        "DJANGO_SETTINGS_MODULE": "labsite.settings",
        "LAB_DATA_DIR": str(work / "data"),
        "LAB_INTERFACE": "wsgi",
        "PYTHONPATH": str(WORKLOADS_DIR),
    }
    seed = run_logged(
        [str(env.python), "-m", "shop.seed"], log_path=work / "seed.log", env=child_env(vars_), cwd=WORKLOADS_DIR
    )
    if seed != 0:
        raise LabError(f"seeding the bench database failed: {tail(work / 'seed.log', 3)}")
    rows: list[AgreementRow] = []
    with running_server(
        parse_server("gunicorn-gthread:1x8"), env, port=None, extra_env=vars_, log_path=work / "server.log"
    ) as (_server, port):
        url = f"http://{HOST}:{port}/{point.endpoint}/sync/?{point.query}"
        # Unmeasured: the first requests after start pay imports and caches, and wrk has no warm-up.
        _lab_load(url, connections, 1.0)
        for round_ in range(rounds):
            for tool in order(round_):
                if tool == "lab.load":
                    result = _lab_load(url, connections, duration, processes)
                    rows.append(
                        AgreementRow(
                            tool=tool,
                            round=round_ + 1,
                            rate_rps=result["throughput_rps"],
                            p50_ms=result["latency_us"]["p50"] / 1000,
                            client_cpu_us_per_req=_lab_cpu_us_per_req(result),
                        )
                    )
                else:
                    measured = _wrk(url, connections, duration)
                    assert measured is not None
                    rows.append(
                        AgreementRow(
                            tool=tool,
                            round=round_ + 1,
                            rate_rps=measured[0],
                            p50_ms=measured[2],
                            client_cpu_us_per_req=measured[1],
                        )
                    )
    return rows
