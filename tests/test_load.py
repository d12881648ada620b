from __future__ import annotations

import asyncio
import http.server
import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

from lab.load import (
    LoadError,
    LoadParams,
    _histogram,
    build_parser,
    build_request,
    check_params,
    longest_wait,
    main,
    raise_nofile_limit,
    run,
    run_load,
)
from lab.loadprocs import child_argv, merge

REPO = Path(__file__).resolve().parent.parent


def params(url: str, **kw: Any) -> LoadParams:
    base: dict[str, Any] = {"connections": 2, "duration": 0.3, "warmup": 0.05, "max_requests": 1000}
    base.update(kw)
    return LoadParams(url=url, **base)


def load(url: str, **kw: Any) -> dict[str, Any]:
    return asyncio.run(run_load(params(url, **kw)))


# -- parameters and requests ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.1:80/", "only loopback addresses are allowed"),
        ("http://example.com:80/", "only loopback addresses are allowed"),
        ("https://127.0.0.1:443/", "must be http://"),
        ("http://127.0.0.1/", "must be http://"),
    ],
)
def test_only_loopback_http_urls(url: str, message: str) -> None:
    with pytest.raises(LoadError, match=message):
        check_params(params(url))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"duration": 601}, "duration must be in"),
        ({"max_requests": 0}, "max_requests must be"),
        ({"connections": 0}, "connections must be"),
        ({"connections": 5000}, "connections must be 1..4096"),
        ({"rate": -1}, "rate must be 0"),
        ({"timeout": 0}, "timeout must be in"),
        ({"method": "BREW"}, "method 'BREW' is not supported"),
        ({"headers": ("Cookie",)}, "must be 'Name: value'"),
        ({"headers": ("X-A: b\r\nX-Evil: c",)}, "must be 'Name: value'"),
        ({"headers": ("Content-Length: 3",)}, "set by the load generator"),
        ({"think": 0.1, "rate": 10.0}, "closed loop only"),
        ({"stagger": 0.1, "rate": 10.0}, "closed loop only"),
        ({"stagger": -1.0}, "stagger must be in"),
        ({"conn_requests": -1}, "conn_requests must be 0"),
    ],
)
def test_bad_parameters_are_refused_with_the_value(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(LoadError, match=message):
        check_params(params("http://127.0.0.1:8000/", **kw))


def test_requests_are_data_method_body_and_headers() -> None:
    p = params(
        "http://127.0.0.1:8000/orm-crud/sync/?n=1",
        method="POST",
        body=b"name=x&qty=2",
        headers=(
            "Cookie: sessionid=abc; csrftoken=tok",
            "X-CSRFToken: tok",
            "Content-Type: application/x-www-form-urlencoded",
        ),
    )
    raw = build_request(p, *check_params(p))
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /orm-crud/sync/?n=1 HTTP/1.1"
    assert "Host: 127.0.0.1:8000" in lines and "Content-Length: 12" in lines
    assert "Cookie: sessionid=abc; csrftoken=tok" in lines and "X-CSRFToken: tok" in lines
    assert body == b"name=x&qty=2"


def test_a_get_has_no_content_length_and_host_can_be_overridden() -> None:
    p = params("http://127.0.0.1:8000/", headers=("Host: testserver",))
    raw = build_request(p, *check_params(p)).decode()
    assert "Content-Length" not in raw and "Host: testserver\r\n" in raw and "127.0.0.1:8000" not in raw


def test_the_histogram_covers_the_longest_wait_the_run_can_produce() -> None:
    closed = params("http://127.0.0.1:8000/", timeout=10.0, duration=5.0, warmup=1.0)
    opened = params("http://127.0.0.1:8000/", timeout=10.0, duration=5.0, warmup=1.0, rate=100.0)
    assert longest_wait(closed) >= 10.0
    # Open loop: due at the start of the window, dispatched as late as deadline + timeout,
    # then answered (or timed out) up to a timeout later.
    assert longest_wait(opened) >= 5.0 + 2 * 10.0


def test_values_beyond_the_histogram_are_counted_not_hidden() -> None:
    hist, clamped = _histogram(array("d", [0.0005, 0.002, 5.0, 7.0]), highest_us=3_000_000)
    assert clamped == 2
    assert hist.get_total_count() == 4  # still recorded (at the top of the range) so percentiles see them
    assert hist.get_max_value() >= 2_990_000


def test_the_command_line_round_trips_through_child_processes() -> None:
    p = params(
        "http://127.0.0.1:8000/x",
        rate=50.0,
        timeout=2.5,
        method="PUT",
        body=b"\x00\xffbinary",
        headers=("Cookie: a=b", "X-CSRFToken: t"),
        start_at=123.5,
        slot_phase=0.5,
        conn_requests=7,
        stagger=0.25,
    )
    args = build_parser().parse_args(child_argv(p, "asyncio"))
    assert args.conn_requests == 7 and args.stagger_ms == 250.0
    assert args.loop == "asyncio" and args.processes == 1
    assert (args.url, args.rate, args.timeout, args.method) == (p.url, 50.0, 2.5, "PUT")
    assert bytes.fromhex(args.body_hex) == p.body and tuple(args.header) == p.headers
    assert (args.start_at, args.slot_phase, args.think_ms) == (123.5, 0.5, 0.0)


def _result(latencies_us: list[int], **counts: Any) -> dict[str, Any]:
    hist = HdrHistogram(1, 10_000_000, 3)
    for v in latencies_us:
        hist.record_value(v)
    base: dict[str, Any] = {key: 0 for key in ("requests", "ok", "non_2xx", "errors", "warmup", "reconnects", "unsent")}
    base |= {key: 0 for key in ("warmup_errors", "connects", "connect_errors", "peak_connections", "events")}
    base |= {"clamped": 0, "cpu_s": 0.0, "cpu_after_s": 0.0, "throughput_rps": 0.0, "started_rps": 0.0}
    base |= {"connections": 1}
    base |= {"max_requests": 10, "rate_rps": 0.0, "wall_s": 1.0, "measured_wall_s": 1.0, "started_at": 100.0}
    base |= {"generator": "lab.load closed-loop uvloop", "histogram_max_us": 10_000_000, "ttfb_histogram": ""}
    base |= {"error_samples": [], "warmup_error_samples": []}
    base["histogram"] = hist.encode().decode("ascii")
    base.update(counts)
    return base


def test_results_of_several_processes_merge_counts_cpu_histograms_and_samples() -> None:
    a = _result([1000] * 98, ok=98, errors=2, requests=100, cpu_s=0.5, error_samples=["connection refused x2"])
    b = _result([1000] * 97 + [900_000] * 3, ok=97, requests=100, cpu_s=0.25, throughput_rps=97.0, started_at=100.02)
    b["error_samples"] = ["connection refused", "HTTP 500 x2"]
    merged = merge([a, b])
    assert (merged["ok"], merged["errors"], merged["requests"], merged["processes"]) == (195, 2, 200, 2)
    assert merged["cpu_s"] == pytest.approx(0.75)
    assert merged["error_samples"] == ["connection refused x3", "HTTP 500 x2"]
    assert merged["start_skew_s"] == pytest.approx(0.02)
    assert merged["generator"].endswith("x2 processes")
    # 3 slow requests in 198 recorded: p99 (the 197th value) is a slow one, p95 is not.
    assert merged["latency_us"]["p99"] >= 890_000 and merged["latency_us"]["p95"] < 2000
    assert HdrHistogram.decode(merged["histogram"]).get_total_count() == 198


# -- against an in-process asyncio server ------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]


class LabTestServer:
    """An asyncio HTTP/1.1 server on its own thread and loop; each path a behaviour."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.arrivals: list[float] = []  # time.perf_counter() at each request's head
        self.count = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self) -> None:
        self.stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=2048)
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        await self.stopping.wait()
        server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                self.arrivals.append(time.perf_counter())
                self.count += 1
                path = head.split(b" ")[1]
                if not await self.respond(path, writer):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def respond(self, path: bytes, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False: close the connection."""
        if path.startswith(b"/ok") or path == b"/echo":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        elif path == b"/500":
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nnope")
        elif path == b"/stall":
            await asyncio.sleep(3600)
        elif path == b"/close":
            return False
        elif path == b"/flaky":
            # Every 20th request stalls: 5% of requests, which a p99 must not hide.
            if self.count % 20 == 0:
                await asyncio.sleep(3600)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        elif path == b"/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.write(b"6\r\n world\r\n0\r\n\r\n")
        elif path == b"/sse":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(4):
                event = b"data: %d\n\n" % i
                writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                await writer.drain()
                await asyncio.sleep(0.01)
            writer.write(b"0\r\n\r\n")
        elif path == b"/idle408":
            # Answer, then, as some servers do with idle keep-alive connections, send a 408 and close.
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            return False
        elif path == b"/hold":
            await asyncio.sleep(0.3)  # long poll: the server holds every request
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        return True

    def __enter__(self) -> LabTestServer:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[LabTestServer]:
    with LabTestServer() as s:
        yield s


def test_closed_loop_counts_and_percentiles(server: LabTestServer) -> None:
    result = load(server.url("/ok"), max_requests=200, duration=5)
    assert result["ok"] == 200  # stops at the request budget, long before the duration
    assert result["errors"] == 0 and result["non_2xx"] == 0 and result["clamped"] == 0
    lat = result["latency_us"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert HdrHistogram.decode(result["histogram"]).get_total_count() == 200
    assert result["cpu_s"] > 0
    assert result["peak_connections"] == 2 and result["connects"] == 2


def test_non_2xx_responses_are_counted_sampled_and_recorded(server: LabTestServer) -> None:
    result = load(server.url("/500"), max_requests=20, duration=5)
    assert (result["ok"], result["non_2xx"]) == (0, 20)
    assert result["error_samples"] == ["HTTP 500 x20"]
    assert HdrHistogram.decode(result["histogram"]).get_total_count() == 20


def test_a_timeout_is_an_error_recorded_at_the_timeout(server: LabTestServer) -> None:
    result = load(server.url("/stall"), duration=0.2, warmup=0, timeout=0.3, connections=3)
    assert result["ok"] == 0 and result["errors"] == 3  # one request per connection, each timed out
    assert result["error_samples"] == ["timeout: no complete response within 0.3 s x3"]
    hist = HdrHistogram.decode(result["histogram"])
    assert hist.get_total_count() == 3
    # Exactly at the timeout (to the histogram's 3 significant digits), not at when it was noticed.
    assert 299_000 <= hist.get_min_value() and hist.get_max_value() <= 301_000


def test_failures_reach_the_tail_percentiles(server: LabTestServer) -> None:
    result = load(server.url("/flaky"), duration=1.0, warmup=0, timeout=0.2, connections=4)
    assert result["errors"] > 0 and result["ok"] > 0
    assert result["requests"] == result["ok"] + result["errors"]
    assert HdrHistogram.decode(result["histogram"]).get_total_count() == result["requests"]
    assert result["latency_us"]["p99"] >= 199_000  # 5% of requests timed out at 0.2 s


def test_a_connection_closed_without_an_answer_is_an_error_at_its_elapsed_time(server: LabTestServer) -> None:
    result = load(server.url("/close"), max_requests=10, duration=5, warmup=0)
    assert (result["ok"], result["errors"]) == (0, 10)
    assert result["error_samples"] == ["server closed the connection before answering x10"]
    hist = HdrHistogram.decode(result["histogram"])
    assert hist.get_total_count() == 10 and hist.get_max_value() < 10_000_000


def test_refused_connections_are_errors_with_a_counted_sample() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        result = load(f"http://127.0.0.1:{port}/", duration=0.2, warmup=0, max_requests=5)
    assert result["ok"] == 0 and result["errors"] == 5 and result["connect_errors"] >= 5
    assert result["error_samples"] == ["connection refused x5"]
    assert HdrHistogram.decode(result["histogram"]).get_total_count() == 5


def test_connections_a_server_never_accepts_are_errors() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(0)  # never accepted: the kernel queues one or two, the rest wait for SYN retries
        port = s.getsockname()[1]
        result = load(f"http://127.0.0.1:{port}/", duration=0.1, warmup=0, timeout=0.3, connections=6)
    assert result["ok"] == 0 and result["errors"] == 6
    assert sum(int(x.rpartition(" x")[2]) if " x" in x else 1 for x in result["error_samples"]) == 6
    assert all("timeout" in x for x in result["error_samples"])


def test_chunked_responses_end_at_the_last_chunk_with_time_to_first_byte(server: LabTestServer) -> None:
    result = load(server.url("/chunked"), max_requests=4, duration=5, warmup=0, connections=1)
    assert (result["ok"], result["errors"]) == (4, 0)
    # The server sends the first chunk at once and the rest 100 ms later.
    assert result["latency_us"]["p50"] >= 100_000
    assert result["ttfb_us"]["max"] < result["latency_us"]["p50"]


def test_server_sent_events_are_counted(server: LabTestServer) -> None:
    result = load(server.url("/sse"), max_requests=3, duration=5, warmup=0, connections=1)
    assert (result["ok"], result["events"]) == (3, 12)


def test_method_body_and_headers_reach_the_server(server: LabTestServer) -> None:
    load(
        server.url("/echo"),
        max_requests=2,
        duration=5,
        warmup=0,
        connections=1,
        method="POST",
        body=b'{"qty": 2}',
        headers=("Cookie: sessionid=s1", "X-CSRFToken: t1", "Content-Type: application/json"),
    )
    assert len(server.requests) == 2
    request = server.requests[0]
    assert request.startswith(b"POST /echo HTTP/1.1\r\n")
    assert b"\r\nCookie: sessionid=s1\r\n" in request and b"\r\nX-CSRFToken: t1\r\n" in request
    assert request.endswith(b"\r\n\r\n" + b'{"qty": 2}')


def test_query_string_reaches_the_server(server: LabTestServer) -> None:
    load(server.url("/ok/billing/sync/?latency=100&k=3"), max_requests=3, duration=5, warmup=0)
    assert {r.split(b" ")[1] for r in server.requests} == {b"/ok/billing/sync/?latency=100&k=3"}


def test_many_mostly_idle_connections_are_held(server: LabTestServer) -> None:
    soft, _hard = raise_nofile_limit()
    if soft < 2 * 1024 + 100:
        pytest.skip(f"open-files limit {soft} too low for 1024 connections to an in-process server")
    # Long poll: every request is held 300 ms, so each of the 1024 connections is idle
    # most of the time and all of them must be open together.
    result = load(server.url("/hold"), duration=1.0, warmup=0.1, timeout=5.0, connections=1024, max_requests=10_000)
    assert result["errors"] == result["warmup_errors"] == 0 and result["error_samples"] == []
    assert result["peak_connections"] == 1024
    assert result["warmup"] + result["ok"] >= 1024  # every connection was answered at least once


def test_closed_loop_throughput_is_not_set_by_where_the_window_edges_fall(server: LabTestServer) -> None:
    # Every answer takes 0.3 s and the 8 connections cycle in step: 0.0, 0.3, 0.6, 0.9, 1.2 s.
    # The window [0.25, 1.3) sees each start 4 requests (30.5 req/s by that count) as long as
    # an answer takes under 0.325 s, while no connection can answer faster than one per 0.3 s
    # (26.7 req/s in all).
    result = load(server.url("/hold"), connections=8, warmup=0.25, duration=1.05)
    assert result["started_rps"] > 8 / 0.3  # what the count of started requests would say
    assert 8 / 0.3 * 0.85 < result["throughput_rps"] <= 8 / 0.3


def test_stagger_spreads_the_connections_and_keeps_them_apart(server: LabTestServer) -> None:
    # 6 connections on a server that holds every request 0.3 s. Started together, each wave of
    # 6 requests arrives within a few ms; staggered over 0.3 s, they arrive 50 ms apart, and stay
    # apart: the window (after the stagger and the warm-up) sees them one by one.
    together = load(server.url("/hold"), connections=6, warmup=0.0, duration=0.65)
    burst = sorted(server.arrivals[:6])
    assert burst[-1] - burst[0] < 0.05 and together["stagger_s"] == 0.0
    server.arrivals.clear()
    start = time.perf_counter()
    spread = load(server.url("/hold"), connections=6, warmup=0.3, duration=0.65, stagger=0.3)
    first = sorted(server.arrivals[:6])
    assert 0.2 < first[-1] - first[0] < 0.35
    gaps = [b - a for a, b in itertools.pairwise(first)]
    assert min(gaps) > 0.02  # one by one, not in bursts
    # In the measured window (from 0.6 s), arrivals are still ~50 ms apart.
    late = sorted(t for t in server.arrivals if t - start > 0.65)
    assert len(late) >= 6 and min(b - a for a, b in itertools.pairwise(late)) > 0.02
    assert spread["stagger_s"] == 0.3 and spread["ok"] >= 6


def test_think_time_spaces_the_requests_of_a_connection(server: LabTestServer) -> None:
    result = load(server.url("/ok"), duration=0.5, warmup=0, connections=1, think=0.1)
    # 0.5 s with 0.1 s idle after every answer: about 5 requests, never hundreds.
    assert 2 <= result["ok"] <= 6


def test_open_loop_sends_at_the_rate_and_measures_from_the_due_time(server: LabTestServer) -> None:
    result = load(server.url("/ok"), rate=100.0, duration=0.5, warmup=0.0, connections=8)
    assert result["mode"] == "open"
    # 0.5 s at 100/s: exactly 50 requests fall due in the measured window; each one is
    # either answered or counted as unsent, and none is sent that was not due.
    assert result["ok"] + result["non_2xx"] + result["errors"] + result["unsent"] == 50
    assert result["ok"] >= 25
    assert result["throughput_rps"] <= 110


def test_open_loop_counts_what_an_overloaded_server_never_got(server: LabTestServer) -> None:
    # One connection, 300 ms per response, 100 requests/s due: nearly all wait in line and
    # their latency grows from the due time (no coordinated omission).
    result = load(server.url("/hold"), rate=100.0, duration=0.5, warmup=0.0, connections=1, timeout=2.0)
    assert result["ok"] + result["unsent"] + result["errors"] == 50
    assert result["unsent"] >= 40
    assert result["latency_us"]["max"] > 500_000  # far more than the 300 ms service time
    assert HdrHistogram.decode(result["histogram"]).get_total_count() == 50
    assert result["clamped"] == 0


def test_bytes_on_an_idle_connection_drop_it_without_an_error(server: LabTestServer) -> None:
    # 5 requests/s on one connection: it is idle 200 ms between requests, long enough for the
    # server's unsolicited 408 and close; each request then reconnects.
    result = load(server.url("/idle408"), rate=5.0, duration=1.0, warmup=0.0, connections=1)
    assert (result["ok"], result["errors"], result["unsent"]) == (5, 0, 0)
    assert result["connects"] == 5
    # 5 answered over the 1 s window, though the last answer came at 0.8 s.
    assert result["throughput_rps"] == pytest.approx(5.0, rel=0.02)


def test_open_loop_slot_phase_offsets_due_times(server: LabTestServer) -> None:
    # Two processes at half the rate, offset by half a slot, make up the full rate.
    a = load(server.url("/ok"), rate=50.0, duration=0.5, warmup=0.0, connections=2, slot_phase=0.0)
    b = load(server.url("/ok"), rate=50.0, duration=0.5, warmup=0.0, connections=2, slot_phase=0.5)
    assert a["ok"] + a["unsent"] == 25 and b["ok"] + b["unsent"] == 25


class ClosingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"hello")
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def test_connections_close_after_conn_requests_responses_and_reopen(server: LabTestServer) -> None:
    result = load(server.url("/ok"), max_requests=200, duration=5, warmup=0, conn_requests=4)
    assert (result["ok"], result["errors"]) == (200, 0)
    # 2 connections, each closed by the client after 4 answers and reopened: about 50 connects.
    assert 50 <= result["connects"] <= 52 and result["reconnects"] >= 49
    assert result["peak_connections"] == 2 and result["conn_requests"] == 4


def test_a_server_closing_after_each_response_is_not_an_error() -> None:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ClosingHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        result = load(f"http://127.0.0.1:{httpd.server_address[1]}/ok", max_requests=50, duration=5)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert (result["ok"], result["errors"]) == (50, 0)
    assert result["reconnects"] >= 50


def test_uvloop_when_installed(server: LabTestServer) -> None:
    pytest.importorskip("uvloop")
    result = run(run_load(params(server.url("/ok"), max_requests=50, duration=5)), "auto")
    assert result["loop"] == "uvloop" and result["generator"] == "lab.load closed-loop uvloop"
    assert result["ok"] == 50


def test_main_prints_one_json_document(server: LabTestServer, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--url", server.url("/ok"), "--duration", "0.2", "--warmup", "0", "--max-requests", "5"])
    out = capsys.readouterr().out
    assert code == 0 and out.count("\n") == 1
    assert json.loads(out)["ok"] == 5


def test_main_reports_bad_parameters_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", "http://10.0.0.1:80/"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: refusing to send load to '10.0.0.1'")


@pytest.mark.functional
def test_processes_split_the_connections_and_merge_their_results(server: LabTestServer) -> None:
    cmd = [sys.executable, "-m", "lab.load", "--url", server.url("/ok"), "--connections", "4", "--processes", "2"]
    done = subprocess.run(
        [*cmd, "--duration", "0.5", "--warmup", "0.1"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["processes"] == 2 and result["connections"] == 4 and result["peak_connections"] == 4
    assert result["ok"] > 0 and result["errors"] == 0
    assert HdrHistogram.decode(result["histogram"]).get_total_count() == result["requests"]
    assert result["start_skew_s"] < 0.5


@pytest.mark.functional
def test_processes_keep_the_open_loop_rate(server: LabTestServer) -> None:
    cmd = [sys.executable, "-m", "lab.load", "--url", server.url("/ok"), "--connections", "4", "--processes", "2"]
    done = subprocess.run(
        [*cmd, "--rate", "100", "--duration", "0.5", "--warmup", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["rate_rps"] == pytest.approx(100.0)
    assert result["ok"] + result["unsent"] + result["errors"] + result["non_2xx"] == 50
