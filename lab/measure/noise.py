"""The machine's noise before a run: what else is running, load average, CPU frequency policy.

Recorded in ``cells.json`` (``machine_noise``) and summarised in one line, with a warning
when the machine is busy: a run started beside a compile or another benchmark measures
both. ``pyperf system show`` is kept verbatim, since it already knows what to look for.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import psutil

from lab.proc import capture, child_env

# Another process above this CPU share (of one core) while we sample counts as busy.
BUSY_PROCESS_SHARE = 0.10
SAMPLE_S = 1.0


def busy_processes(sample_s: float = SAMPLE_S) -> list[dict[str, Any]]:
    """Processes (not ours) that used more than BUSY_PROCESS_SHARE of a core while sampled."""
    mine = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    before: dict[int, tuple[psutil.Process, float]] = {}
    for proc in psutil.process_iter():
        try:
            t = proc.cpu_times()
            before[proc.pid] = (proc, t.user + t.system)
        except psutil.Error:
            continue
    time.sleep(sample_s)
    busy = []
    for pid, (proc, cpu0) in before.items():
        if pid in mine:
            continue
        try:
            t = proc.cpu_times()
            share = (t.user + t.system - cpu0) / sample_s
            if share > BUSY_PROCESS_SHARE:
                busy.append({"pid": pid, "name": proc.name(), "cpu_share": round(share, 2)})
        except psutil.Error:
            continue
    return sorted(busy, key=lambda b: -b["cpu_share"])


def pyperf_system_show() -> str:
    try:
        done = capture([sys.executable, "-m", "pyperf", "system", "show"], env=child_env(), timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable: {exc}"
    return done.stdout.strip()


def machine_noise() -> dict[str, Any]:
    load1, load5, load15 = os.getloadavg()
    busy = busy_processes()
    return {
        "loadavg": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "busy_processes": busy,
        "cpu_percent_per_cpu": psutil.cpu_percent(interval=0.5, percpu=True),
        "pyperf_system_show": pyperf_system_show(),
    }


def noise_summary(noise: dict[str, Any]) -> tuple[str, bool]:
    """(one line for the console and report, whether the machine looks busy)."""
    busy = noise["busy_processes"]
    load1 = noise["loadavg"][0]
    cpus = len(os.sched_getaffinity(0))
    # Busy means something else is using CPU now; the load average is context only (right
    # after the interpreters are built it still remembers the compiler).
    is_busy = bool(busy)
    who = ", ".join(f"{b['name']} (pid {b['pid']}, {b['cpu_share']:.0%})" for b in busy[:4]) or "none"
    return f"load average {load1:.2f} on {cpus} CPUs; other busy processes: {who}", is_busy
