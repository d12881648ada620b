"""The machine's noise before a run: what else is running, load average, CPU frequency policy,
and how steady the CPU's own speed is.

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


# A fixed pure-Python loop timed in short windows, with nothing of ours running: the floor
# under any per-slice figure. On the 2-core Firecracker VM this lab was built on it varies
# by ~10% (CV of 0.25 s windows, slowest ~70% of the median) with no other process busy and
# no steal time reported, i.e. the host's noise, which no measurement design removes.
STEADY_WINDOW_S = 0.25
STEADY_WINDOWS = 24


def cpu_steadiness(windows: int = STEADY_WINDOWS, window_s: float = STEADY_WINDOW_S) -> dict[str, float]:
    """CV of a fixed loop's speed over ``windows`` windows, and the slowest over the median."""
    speeds = []
    for _ in range(windows):
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < window_s:
            for _ in range(10_000):
                n += 1
        speeds.append(n / (time.perf_counter() - start))
    speeds.sort()
    mean = sum(speeds) / len(speeds)
    sd = (sum((v - mean) ** 2 for v in speeds) / (len(speeds) - 1)) ** 0.5
    return {
        "cv": round(sd / mean, 4),
        "slowest_over_median": round(speeds[0] / speeds[len(speeds) // 2], 4),
        "windows": windows,
        "window_s": window_s,
    }


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
        "cpu_steadiness": cpu_steadiness(),
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
    line = f"load average {load1:.2f} on {cpus} CPUs; other busy processes: {who}"
    steady = noise.get("cpu_steadiness")
    if steady:
        line += "; " + steadiness_text(steady)
    return line, is_busy


def steadiness_text(steady: dict[str, float]) -> str:
    """One phrase: how much the CPU's own speed moved before the run."""
    return (
        f"CPU speed varied {steady['cv']:.1%} (CV of {steady['windows']:.0f} windows of {steady['window_s']:g} s of a "
        f"fixed loop, slowest {steady['slowest_over_median']:.0%} of the median)"
    )
