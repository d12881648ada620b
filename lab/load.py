"""Load stage: a closed- or open-loop HTTP/1.1 keep-alive load generator for loopback servers.

Closed loop (default): each connection sends its next request when the previous answer
arrives (after ``--think-ms`` of idle time, if given). Open loop (``--rate``): requests are
due at fixed intervals and each latency is measured from when its request was due, not
when a connection was free to send it, so a server that falls behind shows it in the
percentiles (no coordinated omission). Requests still unsent when the run stops are
recorded at their wait so far and counted as ``unsent``. Throughput: in the closed loop, the
2xx answers pro-rated by how much of each one's time fell inside the measured window
(``lab.loadconn.served_in`` says why); in the open loop, the due requests answered.

Failures are latencies too: a request that fails (refused, reset, closed, malformed) is
recorded in the histogram at the time it took to fail, and one that times out at the
timeout, so a server that drops 1% of requests cannot hide them from p99. The histogram's
range covers the longest wait the run can produce; values beyond it are counted
(``clamped``), never silently cut.

Streaming responses (chunked, server-sent events) are done at the terminating chunk:
``latency_us`` is the total time, ``ttfb_us`` the time to the first byte. Requests are data:
method, body and headers (cookies, CSRF tokens) come from the command line.

Run as its own process (``python -m lab.load``) so its CPU time is measured apart from
the lab and the server; it prints one JSON document with counts, the HDR latency
histogram (encoded) and its own CPU time. ``--processes N`` splits the connections over N
such processes started together and merges their histograms and counts (CPU summed).

Why hand-written: wrk is not on PyPI and not on every box (the lab cross-checks against it
where installed); Python clients such as httpx or aiohttp spend several times more CPU per
request than this, which on a 2-core box would eat the very cores the server under test
needs; locust needs gevent, which has no free-threading story. This client does the minimum
per request: one pre-encoded request write and one scan of the received bytes for the
response's end (``lab.http1``), in an ``asyncio.Protocol`` callback on uvloop where it is
installed: no coroutine, task or timer per request (timeouts are swept), and latencies are
appended to an array and turned into the HDR histogram after the run, outside the measured
CPU. Measured on the 2-vCPU VM against the trivial responder (``lab.upstream``, ms=0), median
of 3 alternating rounds at 1 / 8 / 32 connections, CPU per request: the StreamReader version
117 / 74 / 54 µs, this one 23 / 21 / 17 on uvloop and 54 / 45 / 23 on asyncio's own loop,
wrk 12 / 10 / 11 (``lab bench`` run minutes later: this one 19 / 17 / 14, wrk 12 / 9 / 9).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import re
import resource
import sys
import time
from array import array
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from hdrh.histogram import HdrHistogram

from lab.loadconn import LoadRun, served_in

HIST_MIN_US, HIST_DIGITS = 1, 3
MAX_DURATION_S = 600.0
MAX_REQUESTS = 10_000_000
MAX_CONNECTIONS = 4096
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
LOOPS = ("auto", "uvloop", "asyncio")
Loop = Literal["auto", "uvloop", "asyncio"]
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class LoadError(ValueError):
    """Bad load parameters (reported as one line by ``main``)."""


@dataclass(frozen=True, kw_only=True)
class LoadParams:
    """One generator process's run, as ``python -m lab.load`` options describe it."""

    url: str
    connections: int
    duration: float
    warmup: float
    max_requests: int
    timeout: float = 10.0
    rate: float = 0.0  # requests per second for open loop; 0 = closed loop
    method: str = "GET"
    body: bytes = b""
    headers: tuple[str, ...] = ()  # "Name: value"
    think: float = 0.0  # closed loop: idle seconds between a response and the next request
    start_at: float = 0.0  # wall-clock (time.time) start, to line up several processes; 0 = now
    slot_phase: float = 0.0  # open loop: offset of this process's slots, in slots (0..1)
    # Closed loop: send the connections' first requests spread evenly over this many seconds
    # (0: all at once). Started together against a server that holds each request a fixed
    # time, the connections cycle in step, so every request arrives in a burst with all the
    # others (a broadcast); spread over one hold, they arrive one by one, as independent
    # clients do. With several processes, ``slot_phase`` interleaves their connections.
    stagger: float = 0.0
    # Close each connection after this many responses and open a new one (0: keep alive).
    # With a few dozen long-lived connections, a multi-process server's kernel-side accept
    # split is fixed for a whole window (e.g. 22 of 32 connections on one worker), and
    # throughput follows the split: measured per-round spreads of 26-44% for 2-process shapes
    # against ~8% for 1-process ones (run 2026-11-30-quick-paired-a). Reconnecting every few
    # requests lets the less busy worker accept more, as it does with many real clients.
    conn_requests: int = 0


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
    if not 1 <= p.connections <= MAX_CONNECTIONS:
        raise LoadError(f"connections must be 1..{MAX_CONNECTIONS}, got {p.connections}")
    if not 0 < p.duration <= MAX_DURATION_S:
        raise LoadError(f"duration must be in (0, {MAX_DURATION_S:g}] seconds, got {p.duration}")
    if not 0 <= p.warmup <= MAX_DURATION_S:
        raise LoadError(f"warmup must be in [0, {MAX_DURATION_S:g}] seconds, got {p.warmup}")
    if not 1 <= p.max_requests <= MAX_REQUESTS:
        raise LoadError(f"max_requests must be 1..{MAX_REQUESTS}, got {p.max_requests}")
    if not 0 <= p.rate <= 1_000_000:
        raise LoadError(f"rate must be 0 (closed loop) or up to 1,000,000 requests/s, got {p.rate}")
    if not 0 < p.timeout <= MAX_DURATION_S:
        raise LoadError(f"timeout must be in (0, {MAX_DURATION_S:g}] seconds, got {p.timeout}")
    if not 0 <= p.think <= 60:
        raise LoadError(f"think time must be in [0, 60] seconds, got {p.think}")
    if not 0 <= p.conn_requests <= MAX_REQUESTS:
        raise LoadError(f"conn_requests must be 0 (keep alive) or 1..{MAX_REQUESTS}, got {p.conn_requests}")
    if p.think and p.rate:
        raise LoadError("think time applies to the closed loop only; an open loop's rate sets the pacing")
    if not 0 <= p.stagger <= 60:
        raise LoadError(f"stagger must be in [0, 60] seconds, got {p.stagger}")
    if p.stagger and p.rate:
        raise LoadError("stagger applies to the closed loop only; an open loop's rate already spreads its requests")
    if p.method not in METHODS:
        raise LoadError(f"method {p.method!r} is not supported; accepted: {', '.join(METHODS)}")
    for header in p.headers:
        name, sep, value = header.partition(":")
        if not sep or not _TOKEN.match(name) or "\r" in value or "\n" in value:
            raise LoadError(f"header {header!r} must be 'Name: value' on one line")
        if name.lower() in ("content-length", "transfer-encoding", "connection"):
            raise LoadError(f"header {name!r} is set by the load generator (it frames the body and keeps alive)")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, parts.port, target


def build_request(p: LoadParams, host: str, port: int, target: str) -> bytes:
    """The request bytes, encoded once and written as-is for every request."""
    names = {h.partition(":")[0].strip().lower() for h in p.headers}
    lines = [f"{p.method} {target} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {host}:{port}")
    if "user-agent" not in names:
        lines.append("User-Agent: lab-load")
    lines += [f"{n.strip()}: {v.strip()}" for n, _, v in (h.partition(":") for h in p.headers)]
    if p.body or p.method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(p.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + p.body


def longest_wait(p: LoadParams) -> float:
    """Seconds: the longest latency this run can record.

    Closed loop: a request times out at ``timeout`` after it is sent (connect included).
    Open loop: a request due at the start of the measured window can wait for a free
    connection until the dispatch stops (deadline + timeout), then take up to ``timeout``
    more: duration + 2 timeouts. The sweep that finds timeouts runs every timeout/20, so a
    response can complete up to 5% past the timeout.
    """
    timeout = p.timeout * 1.05 + 0.1
    return p.duration + p.timeout + timeout if p.rate else timeout


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft open-files limit to the hard one (1024 connections need more than the
    usual 1024 descriptors); return the (soft, hard) limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard


def samples_list(samples: dict[str, int]) -> list[str]:
    return [f"{message} x{n}" if n > 1 else message for message, n in samples.items()]


def _histogram(values: array[float], highest_us: int) -> tuple[HdrHistogram, int]:
    """An HDR histogram (µs) of the values (seconds) and how many were clamped to its range.

    Built after the run: recording each value as it arrives would cost more CPU per
    request than sending it.
    """
    import numpy as np

    hist = HdrHistogram(HIST_MIN_US, highest_us, HIST_DIGITS)
    if not values:
        return hist, 0
    us = np.rint(np.frombuffer(values, dtype=np.float64) * 1e6).astype(np.int64)
    clamped = int((us > highest_us).sum())
    us = np.clip(us, HIST_MIN_US, highest_us)
    uniq, counts = np.unique(us, return_counts=True)
    for value, count in zip(uniq.tolist(), counts.tolist(), strict=True):
        hist.record_value(value, count)
    return hist, clamped


def percentiles(hist: HdrHistogram) -> dict[str, float]:
    return {
        "p50": hist.get_value_at_percentile(50),
        "p95": hist.get_value_at_percentile(95),
        "p99": hist.get_value_at_percentile(99),
        "p999": hist.get_value_at_percentile(99.9),
        "max": hist.get_max_value(),
        "mean": hist.get_mean_value(),
    }


def _loop_name() -> str:
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"


async def run_load(p: LoadParams) -> dict[str, Any]:
    host, port, target = check_params(p)
    request = build_request(p, host, port, target)
    highest_us = math.ceil(longest_wait(p) * 1e6)
    if p.start_at:
        await asyncio.sleep(max(0.0, p.start_at - time.time()))
    run = LoadRun(p, host, port, request)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    run.start()
    # Every request in flight times out, so the run ends by this; past it, a bug, not a slow server.
    limit = p.warmup + p.duration + 2 * longest_wait(p) + 10
    try:
        await asyncio.wait_for(asyncio.shield(run.done), limit)
    except TimeoutError:
        raise LoadError(f"the run did not finish within {limit:.0f} s (a load generator bug)") from None
    finally:
        run.stop()
    ended = time.perf_counter()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(2):
        await asyncio.sleep(0)  # let the closed transports release their sockets
    counts = run.counts
    if p.rate:
        # Due but never sent: recorded at the wait they had when the run stopped (a lower
        # bound), so an overloaded server cannot hide them from the percentiles.
        # Slots due strictly before the deadline (the epsilon absorbs float error in the product).
        due_total = min(
            math.ceil((run.deadline - run.started) * p.rate - p.slot_phase - 1e-9),
            math.ceil(p.warmup * p.rate - p.slot_phase - 1e-9) + p.max_requests,
        )
        for slot in range(run.next_slot, due_total):
            intended = run.slot_time(slot)
            if intended >= run.measure_from:
                counts["unsent"] += 1
                run.latencies.append(ended - intended)
        # The window requests were offered in: to the deadline (or the drain after it), or to
        # the end when the request budget ran out first. Ending at the last answer would
        # shorten it by up to one interval and overstate the rate.
        end = ended if run.budget <= 0 else max(ended, run.deadline)
        measured_wall = max(1e-9, end - run.measure_from)
        served = float(counts["ok"])
    else:
        end = min(ended, run.deadline)
        measured_wall = max(1e-9, end - run.measure_from) if end > run.measure_from else 1e-9
        served = served_in(run.ok_spans, run.measure_from, end)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    hist, clamped = _histogram(run.latencies, highest_us)
    ttfb, _ = _histogram(run.ttfb, highest_us)
    cpu2 = resource.getrusage(resource.RUSAGE_SELF)
    total = counts["ok"] + counts["non_2xx"] + counts["errors"]
    mode = "open" if p.rate else "closed"
    return {
        "generator": f"lab.load {mode}-loop {_loop_name()}",
        "loop": _loop_name(),
        "processes": 1,
        "mode": mode,
        "rate_rps": p.rate,
        "python": sys.version.split()[0],
        "method": p.method,
        "connections": p.connections,
        "duration_s": p.duration,
        "warmup_s": p.warmup,
        "timeout_s": p.timeout,
        "think_s": p.think,
        "stagger_s": p.stagger,
        "conn_requests": p.conn_requests,
        "max_requests": p.max_requests,
        "measured_wall_s": measured_wall,
        "wall_s": ended - run.started,
        "requests": total,
        **counts,
        "warmup_errors": run.warmup_errors,
        "connects": run.connects,
        "connect_errors": run.connect_errors,
        "peak_connections": run.peak_open,
        "events": run.events,
        # Closed loop: answers pro-rated by their time inside the window (``served_in``);
        # open loop: the due requests answered (the schedule, not the server, sets the phase).
        "throughput_rps": served / measured_wall,
        # Requests sent in the window and answered, over the window: the closed loop's
        # estimate in runs before 2026-12-06, kept so a round can show how far the edges moved it.
        "started_rps": counts["ok"] / measured_wall,
        "latency_us": percentiles(hist),
        "ttfb_us": percentiles(ttfb),
        "histogram": hist.encode().decode("ascii") if hist.get_total_count() else "",
        "ttfb_histogram": ttfb.encode().decode("ascii") if ttfb.get_total_count() else "",
        "histogram_max_us": highest_us,
        "clamped": clamped,
        "cpu_s": cpu,
        "cpu_after_s": (cpu2.ru_utime - cpu1.ru_utime) + (cpu2.ru_stime - cpu1.ru_stime),
        "error_samples": samples_list(run.samples),
        "warmup_error_samples": samples_list(run.warmup_samples),
        "started_at": time.time() - (time.perf_counter() - run.started),
    }


def run(coro: Coroutine[Any, Any, dict[str, Any]], loop: Loop) -> dict[str, Any]:
    """Run on uvloop where it is installed (``auto``), or on the loop asked for."""
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                coro.close()
                raise LoadError("--loop uvloop: uvloop is not installed (pip install uvloop)") from None
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


def _body(args: argparse.Namespace) -> bytes:
    if args.body_hex is not None:
        return bytes.fromhex(args.body_hex)
    if args.body_file is not None:
        try:
            return Path(args.body_file).read_bytes()
        except OSError as exc:
            raise LoadError(f"cannot read --body-file {args.body_file!r}: {exc.strerror}") from None
    return args.body.encode() if args.body is not None else b""


def build_parser() -> argparse.ArgumentParser:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(prog="python -m lab.load", description=__doc__.splitlines()[0])
    add: Callable[..., Any] = parser.add_argument
    add("--url", required=True, help="http://127.0.0.1:PORT/path (loopback only)")
    add("--connections", type=int, default=8, help="concurrent keep-alive connections (up to 4096)")
    add("--duration", type=float, default=5.0, help="measured seconds (max 600)")
    add("--warmup", type=float, default=1.0, help="unmeasured seconds before measuring")
    add("--max-requests", type=int, default=1_000_000, help="stop after this many measured requests")
    add("--timeout", type=float, default=10.0, help="per-request timeout in seconds (connect included)")
    add(
        "--rate", type=float, default=0.0, help="open loop: requests per second, latency from each due time (0: closed)"
    )
    add("--method", default="GET", choices=METHODS, help="request method")
    body = parser.add_mutually_exclusive_group()
    body.add_argument("--body", help="request body (text, sent as UTF-8)")
    body.add_argument("--body-file", help="request body from a file (bytes as-is)")
    body.add_argument("--body-hex", help=argparse.SUPPRESS)  # how --processes hands a body to its children
    add(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="extra request header, repeatable (Cookie, X-CSRFToken, Content-Type, ...)",
    )
    add(
        "--think-ms",
        type=float,
        default=0.0,
        help="closed loop: idle milliseconds between a response and the connection's next request "
        "(with a server that holds each request, many mostly idle connections: long-poll cells)",
    )
    add(
        "--stagger-ms",
        type=float,
        default=0.0,
        help="closed loop: send the connections' first requests spread evenly over this many milliseconds "
        "(0: all at once); against a server that holds each request a fixed time, connections started "
        "together stay in step (every request in one burst), spread over one hold they arrive one by one. "
        "The warm-up starts after the last connection's first request",
    )
    add(
        "--conn-requests",
        type=int,
        default=0,
        help="close each connection after this many responses and open a new one (0: keep alive); "
        "spreads connections over a multi-process server's workers as many clients would",
    )
    add("--processes", type=int, default=1, help="split the connections over this many generator processes")
    add("--loop", choices=LOOPS, default="auto", help="event loop: uvloop where installed (auto), or force one")
    add("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)  # common start of --processes children
    add("--slot-phase", type=float, default=0.0, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # 1024 connections need more descriptors than the usual soft limit of 1024.
        raise_nofile_limit()
        params = LoadParams(
            url=args.url,
            connections=args.connections,
            duration=args.duration,
            warmup=args.warmup,
            max_requests=args.max_requests,
            timeout=args.timeout,
            rate=args.rate,
            method=args.method,
            body=_body(args),
            headers=tuple(args.header),
            think=args.think_ms / 1000,
            stagger=args.stagger_ms / 1000,
            conn_requests=args.conn_requests,
            start_at=args.start_at,
            slot_phase=args.slot_phase,
        )
        if args.processes != 1:
            from lab.loadprocs import run_processes

            result = run_processes(params, args.processes, args.loop)
        else:
            check_params(params)
            result = run(run_load(params), args.loop)
    except LoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
