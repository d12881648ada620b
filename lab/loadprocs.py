"""Several load generator processes as one (``python -m lab.load --processes N``).

One Python process saturates one core at a few tens of thousands of requests per second;
where cores are to spare, more processes keep the client from being the bottleneck.
The connections, request budget and open-loop rate are split over N children of
``python -m lab.load`` that start their clocks at one wall-clock instant; their results
are merged: counts and CPU summed, HDR histograms added, error messages' counts added.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

from hdrh.histogram import HdrHistogram

from lab.load import (
    HIST_DIGITS,
    HIST_MIN_US,
    LoadError,
    LoadParams,
    Loop,
    check_params,
    longest_wait,
    percentiles,
    samples_list,
)
from lab.proc import pinned_to

SUMMED = (
    "requests",
    "ok",
    "non_2xx",
    "errors",
    "warmup",
    "reconnects",
    "unsent",
    "warmup_errors",
    "connects",
    "connect_errors",
    "peak_connections",
    "events",
    "clamped",
    "cpu_s",
    "cpu_after_s",
    "throughput_rps",
    "started_rps",
    "connections",
    "max_requests",
    "rate_rps",
)


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def child_argv(p: LoadParams, loop: Loop) -> list[str]:
    """Command-line options reproducing ``p`` for one generator process."""
    argv = [
        "--url",
        p.url,
        "--connections",
        str(p.connections),
        "--duration",
        repr(p.duration),
        "--warmup",
        repr(p.warmup),
        "--max-requests",
        str(p.max_requests),
        "--timeout",
        repr(p.timeout),
        "--rate",
        repr(p.rate),
        "--method",
        p.method,
        "--think-ms",
        repr(p.think * 1000),
        "--stagger-ms",
        repr(p.stagger * 1000),
        "--conn-requests",
        str(p.conn_requests),
        "--loop",
        loop,
        "--start-at",
        repr(p.start_at),
        "--slot-phase",
        repr(p.slot_phase),
    ]
    for header in p.headers:
        argv += ["--header", header]
    if p.body:
        argv += ["--body-hex", p.body.hex()]
    return argv


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several processes' results: counts and CPU summed, histograms merged."""
    first = results[0]
    merged = dict(first)
    for key in SUMMED:
        merged[key] = sum(r[key] for r in results)
    for key in ("wall_s", "measured_wall_s"):
        merged[key] = max(r[key] for r in results)
    merged["processes"] = len(results)
    merged["generator"] = f"{first['generator']} x{len(results)} processes"
    starts = [r["started_at"] for r in results]
    merged["start_skew_s"] = max(starts) - min(starts)
    merged["started_at"] = min(starts)
    for key, pct in (("histogram", "latency_us"), ("ttfb_histogram", "ttfb_us")):
        hist = HdrHistogram(HIST_MIN_US, max(r["histogram_max_us"] for r in results), HIST_DIGITS)
        for r in results:
            if r[key]:
                hist.decode_and_add(r[key])
        merged[key] = hist.encode().decode("ascii") if hist.get_total_count() else ""
        merged[pct] = percentiles(hist)
    for key in ("error_samples", "warmup_error_samples"):
        counts: dict[str, int] = {}
        for r in results:
            for sample in r[key]:
                message, _, n = sample.rpartition(" x")
                if not message or not n.isdigit():
                    message, n = sample, "1"
                counts[message] = counts.get(message, 0) + int(n)
        merged[key] = samples_list(counts)
    return merged


def run_processes(p: LoadParams, processes: int, loop: Loop) -> dict[str, Any]:
    """Split the connections (and rate and request budget) over ``processes`` generator
    processes that start their clocks together, and merge what they report.

    Why: one Python process saturates one core at a few tens of thousands of requests per
    second; on a machine with cores to spare, more processes keep the client from being the
    bottleneck. Each process gets its own share of the rate, offset so the union of their
    due times is evenly spaced.
    """
    check_params(p)
    if not 1 <= processes <= min(64, p.connections):
        raise LoadError(f"processes must be 1..{min(64, p.connections)} (at most one per connection), got {processes}")
    # Time for the children to start and import before their common start.
    start_at = time.time() + 0.5 + 0.1 * processes
    children = []
    for i, (conns, budget) in enumerate(
        zip(_split(p.connections, processes), _split(p.max_requests, processes), strict=True)
    ):
        share = replace(
            p,
            connections=conns,
            max_requests=max(1, budget),
            rate=p.rate / processes,
            slot_phase=i / processes if p.rate or p.stagger else 0.0,
            start_at=start_at,
        )
        cmd = [sys.executable, "-m", "lab.load", *child_argv(share, loop)]
        # Each child dies with this process (a killed cell leaves no generator behind) and
        # keeps its CPU affinity, which the lab sets on the generator.
        children.append(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=pinned_to(None))
        )
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    limit = 2 + p.stagger + p.warmup + longest_wait(p) + p.duration + 0.1 * processes + 30
    try:
        for child in children:
            try:
                out, err = child.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                raise LoadError(f"a generator process did not finish within {limit:.0f} s") from None
            if child.returncode != 0:
                failures.append(err.strip()[-300:] or f"exit status {child.returncode}")
            else:
                results.append(json.loads(out))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    if failures:
        raise LoadError(f"{len(failures)} of {processes} generator processes failed: {failures[0]}")
    return merge(results)
