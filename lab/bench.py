"""Benchmarks of the lab's own tools (``lab bench``): is the load generator cheap enough?

Drives the upstream simulator at zero latency (a trivial responder) with the lab's load
generator at a few connection counts and reports its maximum rate and its own CPU cost per
request; where ``wrk`` is installed it runs the same load through wrk for a cross-check,
and (``lab bench --cell``) one real HTTP cell through both tools: their throughput should
agree within 10% where the Django server, not the client, is the bottleneck.
The figure that matters for a cell, the load generator's CPU share against the server's,
is recorded with every HTTP cell and summarised in each report.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from lab.envs import WORKLOADS_DIR, WorkloadEnv
from lab.errors import LabError
from lab.proc import child_env, managed, run_logged, tail
from lab.serve import free_port, responds_tcp, running_server
from lab.servers import HOST, parse_server
from lab.spec import load_mix

LAB_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, kw_only=True)
class HeadroomRow:
    tool: str
    connections: int
    rate_rps: float
    client_cpu_us_per_req: float
    responder_cpu_us_per_req: float
    p50_ms: float


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _wrk(url: str, connections: int, duration: float) -> tuple[float, float, float] | None:
    """(rate, client CPU seconds, p50 ms) from wrk, or None if wrk is not installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    # wrk is our child: its CPU time comes back through RUSAGE_CHILDREN once it is reaped.
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", url],
        capture_output=True,
        text=True,
        check=False,
        timeout=duration + 30,
    )
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", done.stdout)
    if done.returncode != 0 or rate is None:
        raise LabError(f"wrk failed: {done.stderr.strip()[-200:]}")
    p50_ms = float(p50.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)] if p50 else float("nan")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return float(rate.group(1)), cpu, p50_ms


def _lab_load(url: str, connections: int, duration: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "lab.load", "--url", url, "--connections", str(connections)]
    done = subprocess.run(
        [*cmd, "--duration", str(duration), "--warmup", "0.5"],
        capture_output=True,
        text=True,
        env=child_env({"PYTHONPATH": str(LAB_ROOT)}),
        check=False,
        timeout=duration + 60,
    )
    if done.returncode != 0:
        raise LabError(f"load generator failed: {done.stderr.strip()[-200:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def headroom(connections: tuple[int, ...], duration: float, work: Path) -> list[HeadroomRow]:
    port = free_port()
    rows: list[HeadroomRow] = []
    cmd = [sys.executable, "-m", "lab.upstream", "--port", str(port)]
    env = child_env({"PYTHONPATH": str(LAB_ROOT)})
    with managed(cmd, name="trivial responder", log_path=work / "responder.log", env=env, stop_signal=2) as responder:
        responder.wait_ready(lambda: responds_tcp(port), timeout=30)
        url = f"http://{HOST}:{port}/?ms=0"
        for conns in connections:
            before = _cpu(responder.pid)
            result = _lab_load(url, conns, duration)
            total = max(1, result["requests"] + result["warmup"])
            responder_cpu = _cpu(responder.pid) - before
            rows.append(
                HeadroomRow(
                    tool="lab.load",
                    connections=conns,
                    rate_rps=result["throughput_rps"],
                    client_cpu_us_per_req=1e6 * result["cpu_s"] / total,
                    responder_cpu_us_per_req=1e6 * responder_cpu / total,
                    p50_ms=result["latency_us"]["p50"] / 1000,
                )
            )
            before = _cpu(responder.pid)
            wrk = _wrk(url, conns, duration)
            if wrk is not None:
                rate, cpu, p50 = wrk
                requests = max(1.0, rate * duration)
                rows.append(
                    HeadroomRow(
                        tool="wrk",
                        connections=conns,
                        rate_rps=rate,
                        client_cpu_us_per_req=1e6 * cpu / requests,
                        responder_cpu_us_per_req=1e6 * (_cpu(responder.pid) - before) / requests,
                        p50_ms=p50,
                    )
                )
    return rows


@dataclass(frozen=True, kw_only=True)
class AgreementRow:
    tool: str
    rate_rps: float
    p50_ms: float


def agreement(env: WorkloadEnv, connections: int, duration: float, work: Path) -> list[AgreementRow]:
    """The same HTTP cell (cpu-heavy, sync, gunicorn gthread 1x8) through lab.load and wrk,
    alternating twice, so the two tools' throughput can be compared where the server is
    the bottleneck. Empty when wrk is not installed."""
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
        for _round in range(2):
            result = _lab_load(url, connections, duration)
            rows.append(
                AgreementRow(
                    tool="lab.load", rate_rps=result["throughput_rps"], p50_ms=result["latency_us"]["p50"] / 1000
                )
            )
            measured = _wrk(url, connections, duration)
            assert measured is not None
            rows.append(AgreementRow(tool="wrk", rate_rps=measured[0], p50_ms=measured[2]))
    return rows
