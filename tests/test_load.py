from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator

import pytest

from lab.load import LoadError, LoadParams, check_params, run_load


def params(url: str, **kw: float) -> LoadParams:
    base = {"connections": 2, "duration": 0.3, "warmup": 0.05, "max_requests": 1000}
    base.update(kw)
    return LoadParams(url=url, **base)  # type: ignore[arg-type]


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


def test_request_counts_and_durations_are_bounded() -> None:
    with pytest.raises(LoadError, match="duration must be in"):
        check_params(params("http://127.0.0.1:8000/", duration=601))
    with pytest.raises(LoadError, match="max_requests must be"):
        check_params(params("http://127.0.0.1:8000/", max_requests=0))
    with pytest.raises(LoadError, match="connections must be"):
        check_params(params("http://127.0.0.1:8000/", connections=0))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"hello" if self.path == "/ok" else b"nope"
        self.send_response(200 if self.path == "/ok" else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server() -> Iterator[int]:
    yield from _serve(Handler)


def test_closed_loop_counts_and_percentiles(server: int) -> None:
    result = asyncio.run(run_load(params(f"http://127.0.0.1:{server}/ok", max_requests=200, duration=5)))
    assert result["ok"] == 200  # stops at the request budget, long before the duration
    assert result["errors"] == 0 and result["non_2xx"] == 0
    lat = result["latency_us"]
    assert isinstance(lat, dict)
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert result["histogram"]
    assert result["cpu_s"] > 0


def test_non_2xx_responses_are_counted(server: int) -> None:
    result = asyncio.run(run_load(params(f"http://127.0.0.1:{server}/bad", max_requests=20, duration=5)))
    assert (result["ok"], result["non_2xx"]) == (0, 20)


def test_refused_connections_are_errors() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        result = asyncio.run(run_load(params(f"http://127.0.0.1:{port}/", duration=0.2, warmup=0, max_requests=5)))
    assert result["ok"] == 0 and result["errors"] == 5


def test_query_string_reaches_the_server() -> None:
    seen: list[str] = []

    class Recorder(Handler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.path = "/ok"
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/billing/sync/?latency=100&k=3"
        asyncio.run(run_load(params(url, max_requests=3, duration=5, warmup=0)))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert seen and set(seen) == {"/billing/sync/?latency=100&k=3"}


def test_non_2xx_statuses_are_sampled(server: int) -> None:
    result = asyncio.run(run_load(params(f"http://127.0.0.1:{server}/bad", max_requests=3, duration=5)))
    assert result["error_samples"] == ["HTTP 500"] * 3


def test_open_loop_sends_at_the_rate_and_measures_from_the_due_time(server: int) -> None:
    # Enough connections that the test server (tens of ms per response on some kernels,
    # Nagle + delayed ACK) keeps up with the rate.
    result = asyncio.run(
        run_load(params(f"http://127.0.0.1:{server}/ok", rate=100.0, duration=0.5, warmup=0.0, connections=32))
    )
    assert result["mode"] == "open"
    # 0.5 s at 100/s: exactly 50 requests fall due in the measured window; each one is
    # either answered or counted as unsent, and none is sent that was not due.
    assert result["ok"] + result["non_2xx"] + result["errors"] + result["unsent"] == 50
    assert result["ok"] >= 25
    assert result["throughput_rps"] <= 110


def test_open_loop_counts_what_an_overloaded_server_never_got(slow_server: int) -> None:
    # One connection, 50 ms per response, 100 requests/s due: half of them wait in line and
    # their latency grows from the due time (no coordinated omission).
    result = asyncio.run(
        run_load(
            params(
                f"http://127.0.0.1:{slow_server}/ok", rate=100.0, duration=0.5, warmup=0.0, connections=1, timeout=0.3
            )
        )
    )
    lat = result["latency_us"]
    assert isinstance(lat, dict)
    assert lat["max"] > 200_000  # far more than the 50 ms service time
    assert result["ok"] + result["unsent"] >= 45


def test_a_server_closing_after_each_response_is_not_an_error(closing_server: int) -> None:
    result = asyncio.run(run_load(params(f"http://127.0.0.1:{closing_server}/ok", max_requests=50, duration=5)))
    assert (result["ok"], result["errors"]) == (50, 0)
    assert result["reconnects"] >= 50


def test_bad_rate() -> None:
    with pytest.raises(LoadError, match="rate must be 0"):
        check_params(params("http://127.0.0.1:8000/", rate=-1))


class SlowHandler(Handler):
    def do_GET(self) -> None:
        import time

        time.sleep(0.05)
        super().do_GET()


class ClosingHandler(Handler):
    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


@pytest.fixture
def slow_server() -> Iterator[int]:
    yield from _serve(SlowHandler)


@pytest.fixture
def closing_server() -> Iterator[int]:
    yield from _serve(ClosingHandler)
