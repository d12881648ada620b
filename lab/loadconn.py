"""The load generator's engine: connections as ``asyncio.Protocol`` callbacks and the schedule
that decides when each sends (closed loop, open loop, think time), for ``lab.load``.

No coroutine, task or timer per request: a response completes in ``data_received``, which
records it and writes the connection's next request at once (closed loop), or hands the
connection to the open-loop dispatcher. A timer runs only to wake the dispatcher for the
next due request when every connection is idle, and a periodic sweep (every timeout/20,
at most 100 ms) fails requests that outlived the timeout, at exactly the timeout.
Connections open lazily, when a request is due, so a connect failure is that request's
failure. What it hands on: counts, error messages with their counts, and the measured
latencies and times to first byte as arrays of seconds (``lab.load`` turns them into
histograms after the run).
"""

from __future__ import annotations

import asyncio
import errno
import time
from array import array
from typing import TYPE_CHECKING, cast

from lab.http1 import ProtocolError, ResponseParser

if TYPE_CHECKING:
    from lab.load import LoadParams

MAX_SAMPLES = 5  # distinct error messages kept, each with its count


def describe(exc: BaseException) -> str:
    """A short, countable message for a failed request (no addresses or ports in it)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, TimeoutError):
        return "connect timeout"
    if isinstance(exc, ProtocolError):
        return f"bad response: {exc}"
    if isinstance(exc, OSError):
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            return "too many open files (raise ulimit -n)"
        if exc.errno == errno.EADDRNOTAVAIL:
            return "no local port free (ephemeral ports exhausted)"
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


class Conn(asyncio.Protocol):
    """One TCP connection (a reconnect gets a new one) and the request in flight on it."""

    __slots__ = ("answers", "dead", "first", "intended", "measured", "parser", "run", "sent", "t0", "transport")

    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser()
        self.dead = False  # closed, or failed: never reused
        self.sent = False  # a request is in flight (connecting or written, not yet answered)
        self.measured = False
        self.intended = 0.0  # when the request was due (open loop) or started (closed loop)
        self.t0 = 0.0  # when the request was written, or its connect attempt started
        self.first = 0.0  # first byte of the answer
        self.answers = 0  # responses received on this connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        run = self.run
        run.open_now += 1
        run.peak_open = max(run.peak_open, run.open_now)

    def data_received(self, data: bytes) -> None:
        t = time.perf_counter()
        if not self.sent:
            # Bytes on an idle connection (a server's 408 before it closes an idle keep-alive
            # connection): no request of ours failed; drop the connection, the next request on
            # this lane reconnects.
            if not self.dead and self.transport is not None:
                self.dead = True
                self.run.live.discard(self)
                self.transport.abort()
            return
        if not self.first:
            self.first = t
        try:
            done = self.parser.feed(data)
        except ProtocolError as exc:
            self.run.fail(self, describe(exc), t)
            return
        if done:
            self.run.answered(self, t)

    def eof_received(self) -> bool:
        return False  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        run = self.run
        run.open_now -= 1
        if self.dead:
            return
        if self.sent:
            t = time.perf_counter()
            if exc is None and self.parser.eof():
                self.run.answered(self, t)
            else:
                run.fail(self, describe(exc) if exc else "server closed the connection before answering", t)
        else:
            self.dead = True  # closed by the server while idle: the next request reconnects


def served_in(spans: array[float], start: float, end: float) -> float:
    """Answers served in ``[start, end)``, each pro-rated by the share of its time inside it.

    ``spans`` holds (start, end) pairs. Why not the requests started in the window: in a closed
    loop every connection sends its next request the instant an answer arrives, so with the
    same wait on every request (an upstream at a fixed 500 ms) the connections cycle in step
    and a window a few hold times long sees each of them start either k or k + 1 requests
    depending on where the window's edges fall. Runs 2026-12-02-quick-f/-g measured sync at
    io-sweep@latency=500 at 64.0 req/s in 8 of 9 rounds (6 starts for every one of 32
    connections in 3 s), above the 62-63 req/s its own mean latency allows, while uvicorn's
    rounds fell between 51 and 63. A request's share of the window is what it contributed
    to it, so the sum is the rate without the edge effect (a connection always busy with
    requests of T seconds counts window / T).
    """
    served = 0.0
    for i in range(0, len(spans), 2):
        t0, t1 = spans[i], spans[i + 1]
        inside = min(t1, end) - max(t0, start)
        if inside > 0:
            served += inside / (t1 - t0)
        elif t1 == t0 and start <= t0 < end:
            served += 1.0
    return served


class LoadRun:
    """The state of one run: schedule, counts and recorded latencies, driven by callbacks."""

    def __init__(self, p: LoadParams, host: str, port: int, request: bytes) -> None:
        self.p = p
        self.host, self.port, self.request = host, port, request
        self.loop = asyncio.get_running_loop()
        self.open = bool(p.rate)
        self.think = p.think
        self.head_only = p.method == "HEAD"
        self.counts = {"ok": 0, "non_2xx": 0, "errors": 0, "warmup": 0, "reconnects": 0, "unsent": 0}
        self.warmup_errors = 0
        self.connects = self.connect_errors = self.open_now = self.peak_open = 0
        self.events = 0
        self.samples: dict[str, int] = {}
        self.warmup_samples: dict[str, int] = {}
        self.latencies = array("d")  # seconds, measured requests (errors and timeouts included)
        self.ttfb = array("d")  # seconds to the first byte of each answered measured request
        # Closed loop: (start, end) of every 2xx answer that ended after the window opened,
        # warm-up requests included, for ``served_in``.
        self.ok_spans = array("d")
        self.budget = p.max_requests
        self.next_slot = 0
        self.idle: list[Conn | None] = []  # open loop: free connections (None: needs a connect)
        self.live: set[Conn] = set()
        self.lanes = p.connections
        self.timer: asyncio.TimerHandle | None = None
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.started = self.measure_from = self.deadline = self.hard_stop = 0.0

    # -- schedule -------------------------------------------------------------

    def start(self) -> None:
        self.started = time.perf_counter()
        # A staggered start is not measured: the warm-up begins once every connection has sent.
        self.measure_from = self.started + self.p.stagger + self.p.warmup
        self.deadline = self.measure_from + self.p.duration
        # Open loop: requests due up to the deadline are still sent after it, until this.
        self.hard_stop = self.deadline + self.p.timeout
        self.loop.call_later(self._sweep_every(), self._sweep)
        for i in range(self.p.connections):
            if self.p.stagger:
                self.loop.call_later(self.p.stagger * (i + self.p.slot_phase) / self.p.connections, self.free, None)
            else:
                self.free(None)

    def slot_time(self, slot: int) -> float:
        return self.started + (slot + self.p.slot_phase) / self.p.rate

    def free(self, c: Conn | None, now: float = 0.0) -> None:
        """A connection (None: one to be opened) can send its next request; ``now`` if known."""
        if not now:
            now = time.perf_counter()
        if not self.open:
            if now >= self.deadline:
                self.finish(c)
            else:
                self.send(c, now)
            return
        if now >= self.hard_stop:
            self.finish(c)
            return
        intended = self.slot_time(self.next_slot)
        if intended >= self.deadline:
            self.finish(c)
        elif intended <= now:
            self.next_slot += 1
            self.send(c, intended)
        else:
            # Most recently freed first (a stack): connections left idle long enough to meet the
            # server's keep-alive timeout are closed cleanly by it and reopened when used,
            # rather than racing a request against the server's close.
            self.idle.append(c)
            self._arm(intended)

    def _arm(self, intended: float) -> None:
        if self.timer is None:
            self.timer = self.loop.call_later(max(0.0, intended - time.perf_counter()), self._tick)

    def _tick(self) -> None:
        self.timer = None
        now = time.perf_counter()
        while self.idle:
            intended = self.slot_time(self.next_slot)
            if intended >= self.deadline or now >= self.hard_stop:
                while self.idle:
                    self.finish(self.idle.pop())
                return
            if intended > now:
                self._arm(intended)
                return
            self.next_slot += 1
            self.send(self.idle.pop(), intended)

    def finish(self, c: Conn | None) -> None:
        """This lane sends no more requests."""
        if c is not None and not c.dead:
            c.dead = True
            self.live.discard(c)
            if c.transport is not None:
                c.transport.close()
        self.lanes -= 1
        if self.lanes == 0 and not self.done.done():
            self.done.set_result(None)

    # -- requests -------------------------------------------------------------

    def send(self, c: Conn | None, intended: float) -> None:
        if c is not None and c.dead:
            c = None  # closed while it waited (idle in the open loop, or thinking): reconnect
        measured = intended >= self.measure_from
        if measured:
            # Reserve a slot of the budget before sending, so requests in flight on other
            # connections can never overshoot it.
            if self.budget <= 0:
                self.finish(c)
                return
            self.budget -= 1
        if c is None:
            c = Conn(self)
            self.live.add(c)
            # sent: the request belongs to this connection from now on, so a failed or timed-out
            # connect is that request's failure.
            c.intended, c.measured, c.sent, c.t0 = intended, measured, True, time.perf_counter()
            c.parser.reset(head_only=self.head_only)
            self.loop.create_task(self._connect(c))
            return
        c.intended, c.measured, c.first, c.sent = intended, measured, 0.0, True
        c.parser.reset(head_only=self.head_only)
        assert c.transport is not None
        c.t0 = time.perf_counter()
        c.transport.write(self.request)

    async def _connect(self, c: Conn) -> None:
        try:
            transport, _ = await asyncio.wait_for(
                self.loop.create_connection(lambda: c, self.host, self.port), self.p.timeout
            )
        # Any failure to connect is this request's failure; an uncaught one would strand the lane.
        except Exception as exc:
            self.connect_errors += 1
            self.fail(c, describe(exc), time.perf_counter())
            return
        self.connects += 1
        if c.dead:  # already failed: timed out, or the server closed it before the request went out
            transport.close()
            return
        c.first = 0.0
        c.t0 = time.perf_counter()
        transport.write(self.request)

    def answered(self, c: Conn, t: float) -> None:
        c.sent = False
        parser = c.parser
        if c.measured:
            start = c.intended if self.open else c.t0
            self.latencies.append(t - start)
            self.ttfb.append((c.first or t) - start)
            self.events += parser.events
            if 200 <= parser.status < 300:
                self.counts["ok"] += 1
            else:
                self.counts["non_2xx"] += 1
                self._sample(self.samples, f"HTTP {parser.status}")
        else:
            self.counts["warmup"] += 1
        if not self.open and t > self.measure_from and 200 <= parser.status < 300:
            # From when the lane took the request on (its connect included) to its answer.
            self.ok_spans.extend((c.intended, t))
        c.answers += 1
        if parser.close or c.answers == self.p.conn_requests:
            # gunicorn's sync worker closes after every response, and --conn-requests closes
            # after N: reconnect, not an error.
            c.dead = True
            self.live.discard(c)
            if c.transport is not None:
                c.transport.close()
            self.counts["reconnects"] += 1
        if self.think:
            self.loop.call_later(self.think, self.free, c)
        else:
            self.free(c, t)

    def fail(self, c: Conn, message: str, t: float) -> None:
        """The request on ``c`` failed at ``t``: record it at the time it took, drop the connection."""
        if c.dead:
            return
        c.dead = True
        c.sent = False
        self.live.discard(c)
        if c.transport is not None:
            c.transport.abort()
        if c.measured:
            self.counts["errors"] += 1
            self.latencies.append(t - (c.intended if self.open else c.t0))
            self._sample(self.samples, message)
        else:
            self.warmup_errors += 1
            self._sample(self.warmup_samples, message)
        # A short pause so a refusing server is not hammered in a tight loop.
        self.loop.call_later(0.001, self.free, None)

    @staticmethod
    def _sample(samples: dict[str, int], message: str) -> None:
        if message in samples or len(samples) < MAX_SAMPLES:
            samples[message] = samples.get(message, 0) + 1
        else:
            samples["(other errors)"] = samples.get("(other errors)", 0) + 1

    # -- timeouts -------------------------------------------------------------

    def _sweep_every(self) -> float:
        return max(0.005, min(0.1, self.p.timeout / 20))

    def _sweep(self) -> None:
        """Fail requests in flight longer than the timeout, at exactly the timeout.

        One periodic sweep instead of a timer per request: a timer costs more CPU per
        request than the rest of the bookkeeping together.
        """
        if self.done.done():
            return
        now = time.perf_counter()
        timeout = self.p.timeout
        for c in [c for c in self.live if c.sent and now - c.t0 >= timeout]:
            self.fail(c, f"timeout: no complete response within {timeout:g} s", c.t0 + timeout)
        self.loop.call_later(self._sweep_every(), self._sweep)

    def stop(self) -> None:
        for c in list(self.live):
            c.dead = True
            if c.transport is not None:
                c.transport.close()
        if self.timer is not None:
            self.timer.cancel()
