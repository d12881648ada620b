"""Load stage: a closed- or open-loop HTTP/1.1 keep-alive load generator for loopback servers.

Closed loop (default): each connection sends its next request when the previous answer
arrives. Open loop (``--rate``): requests are due at fixed intervals and each latency is
measured from when its request was due, not when a connection was free to send it, so
a server that falls behind shows it in the percentiles (no coordinated omission).
Requests still unsent when the run stops are recorded at their wait so far and counted
as ``unsent``.

Run as its own process (``python -m lab.load``) so its CPU time is measured apart from
the lab and the server; it prints one JSON document with counts, the HDR latency
histogram (encoded) and its own CPU time.

Why hand-written: wrk is not on PyPI and not on every box (the lab cross-checks
against it where installed); Python clients such as httpx or aiohttp spend several
times more CPU per request than this, which on a 2-core box would eat the very cores
the server under test needs; locust needs gevent, which has no free-threading story.
This client does the minimum per request: one pre-encoded request write, a status
line, headers up to Content-Length and the body.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hdrh.histogram import HdrHistogram

# 1 µs .. 60 s at 3 significant digits: enough for loopback latencies and timeouts alike.
HIST_MIN_US, HIST_MAX_US, HIST_DIGITS = 1, 60_000_000, 3
MAX_DURATION_S = 600.0
MAX_REQUESTS = 10_000_000


class LoadError(ValueError):
    """Bad load parameters (reported as one line by ``main``)."""


@dataclass(frozen=True, kw_only=True)
class LoadParams:
    url: str
    connections: int
    duration: float
    warmup: float
    max_requests: int
    timeout: float = 10.0
    rate: float = 0.0  # requests per second for open loop; 0 = closed loop


def check_params(p: LoadParams) -> tuple[str, int, str]:
    """Validate and return (host, port, request target with query); load only ever goes to loopback."""
    parts = urlsplit(p.url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise LoadError(f"url {p.url!r} must be http://<loopback-ip>:<port>/<path>")
    try:
        loopback = ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        loopback = parts.hostname == "localhost"
    if not loopback:
        raise LoadError(f"refusing to send load to {parts.hostname!r}: only loopback addresses are allowed")
    if p.connections < 1 or p.connections > 4096:
        raise LoadError(f"connections must be 1..4096, got {p.connections}")
    if not 0 < p.duration <= MAX_DURATION_S:
        raise LoadError(f"duration must be in (0, {MAX_DURATION_S:g}] seconds, got {p.duration}")
    if not 0 <= p.warmup <= MAX_DURATION_S:
        raise LoadError(f"warmup must be in [0, {MAX_DURATION_S:g}] seconds, got {p.warmup}")
    if not 1 <= p.max_requests <= MAX_REQUESTS:
        raise LoadError(f"max_requests must be 1..{MAX_REQUESTS}, got {p.max_requests}")
    if not 0 <= p.rate <= 1_000_000:
        raise LoadError(f"rate must be 0 (closed loop) or up to 1,000,000 requests/s, got {p.rate}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, parts.port, target


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the server closes the connection after this response)."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    close = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value)
        elif lname == b"connection" and value.strip().lower() == b"close":
            close = True
        elif lname == b"transfer-encoding":
            raise ConnectionError("chunked responses are not supported by the load generator")
    if length:
        await reader.readexactly(length)
    # gunicorn's sync worker closes after every response: reconnect, not an error.
    return status, close


async def run_load(p: LoadParams) -> dict[str, Any]:
    host, port, path = check_params(p)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: lab-load\r\n\r\n".encode()
    hist = HdrHistogram(HIST_MIN_US, HIST_MAX_US, HIST_DIGITS)
    counts = {"ok": 0, "non_2xx": 0, "errors": 0, "warmup": 0, "reconnects": 0, "unsent": 0}
    started = time.perf_counter()
    measure_from = started + p.warmup
    deadline = measure_from + p.duration
    # Open loop: requests due up to the deadline are still sent after it, until this.
    hard_stop = deadline + p.timeout
    budget = [p.max_requests]
    next_slot = [0]
    error_samples: list[str] = []

    def record(latency_s: float) -> None:
        hist.record_value(max(HIST_MIN_US, min(HIST_MAX_US, round(latency_s * 1e6))))

    async def due() -> float | None:
        """When the next request is due (open loop, after waiting for it), or now; None: stop."""
        if not p.rate:
            now = time.perf_counter()
            return None if now >= deadline else now
        intended = started + next_slot[0] / p.rate
        if intended >= deadline or time.perf_counter() >= hard_stop:
            return None
        next_slot[0] += 1
        delay = intended - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        return intended

    async def connection() -> None:
        reader = writer = None
        while True:
            intended = await due()
            if intended is None:
                break
            measured = intended >= measure_from
            if measured:
                # Reserve a slot of the budget before sending, so in-flight requests
                # on other connections can never overshoot it.
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), p.timeout)
                assert reader is not None and writer is not None
                t0 = time.perf_counter()
                writer.write(request)
                status, close = await asyncio.wait_for(_read_response(reader), p.timeout)
                t1 = time.perf_counter()
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                if measured:
                    counts["errors"] += 1
                    if len(error_samples) < 5:
                        error_samples.append(f"{type(exc).__name__}: {exc}")
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.001)
                continue
            if close:
                writer.close()
                reader = writer = None
                counts["reconnects"] += 1
            if not measured:
                counts["warmup"] += 1
                continue
            record(t1 - (intended if p.rate else t0))
            if 200 <= status < 300:
                counts["ok"] += 1
            else:
                counts["non_2xx"] += 1
                if len(error_samples) < 5:
                    error_samples.append(f"HTTP {status}")
        if writer is not None:
            writer.close()

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(connection() for _ in range(p.connections)))
    ended = time.perf_counter()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    if p.rate:
        # Due but never sent: recorded at the wait they had when the run stopped (a lower
        # bound), so an overloaded server cannot hide them from the percentiles.
        # Slots due strictly before the deadline (the epsilon absorbs float error in the product).
        due_total = min(math.ceil((deadline - started) * p.rate - 1e-9), int(p.warmup * p.rate) + p.max_requests)
        for slot in range(next_slot[0], due_total):
            intended = started + slot / p.rate
            if intended >= measure_from:
                counts["unsent"] += 1
                record(ended - intended)
        measured_wall = max(1e-9, ended - measure_from)
    else:
        measured_wall = max(1e-9, min(ended, deadline) - measure_from) if ended > measure_from else 1e-9
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    total = counts["ok"] + counts["non_2xx"] + counts["errors"]
    return {
        "generator": f"lab.load {'open' if p.rate else 'closed'}-loop asyncio",
        "mode": "open" if p.rate else "closed",
        "rate_rps": p.rate,
        "python": sys.version.split()[0],
        "connections": p.connections,
        "duration_s": p.duration,
        "warmup_s": p.warmup,
        "max_requests": p.max_requests,
        "measured_wall_s": measured_wall,
        "wall_s": ended - started,
        "requests": total,
        **counts,
        "throughput_rps": counts["ok"] / measured_wall,
        "latency_us": {
            "p50": hist.get_value_at_percentile(50),
            "p95": hist.get_value_at_percentile(95),
            "p99": hist.get_value_at_percentile(99),
            "p999": hist.get_value_at_percentile(99.9),
            "max": hist.get_max_value(),
            "mean": hist.get_mean_value(),
        },
        "histogram": hist.encode().decode("ascii") if hist.get_total_count() else "",
        "cpu_s": cpu,
        "error_samples": error_samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.load", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT/path (loopback only)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds (max 600)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before measuring")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="stop after this many measured requests")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="open loop: requests per second, latency from each due time (0: closed)"
    )
    args = parser.parse_args(argv)
    params = LoadParams(
        url=args.url,
        connections=args.connections,
        duration=args.duration,
        warmup=args.warmup,
        max_requests=args.max_requests,
        timeout=args.timeout,
        rate=args.rate,
    )
    try:
        result = asyncio.run(run_load(params))
    except LoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
