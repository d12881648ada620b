"""Resource sampling of a server's process tree with psutil, from the lab's own process.

pyperf turns its psutil use off on free-threaded builds, and psutil inside the server
would be measured along with it, so the lab samples from outside: CPU time over the
measured window, peak and mean RSS, thread counts, and, for a server with several worker
processes, how the load generator's connections split between them (a shared listening
socket does not balance keep-alive connections: an asyncio worker accepts a whole burst at
once, so one worker may hold nearly all of them while the other idles).
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass

import psutil

SAMPLE_INTERVAL_S = 0.2
# psutil lists a process's sockets by reading every TCP socket of the machine (about 15 ms
# with 500 of them open), on the cores the measurement shares: the split is sampled this
# rarely, and only for servers with more than one worker.
CONNECTIONS_INTERVAL_S = 2.0


@dataclass(frozen=True, kw_only=True)
class ResourceUsage:
    cpu_s: float
    rss_peak_mib: float
    rss_mean_mib: float
    threads_peak: int
    processes_peak: int
    samples: int
    # Established connections on the server's port per worker process (median over the
    # samples, busiest first); empty when not sampled.
    connections_per_worker: tuple[int, ...] = ()


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cpu_by_pid(procs: list[psutil.Process]) -> dict[int, float]:
    out: dict[int, float] = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def connections_by_pid(procs: list[psutil.Process], port: int) -> dict[int, int]:
    """Established TCP connections whose local port is ``port``, per process that has any."""
    out: dict[int, int] = {}
    for p in procs:
        try:
            conns = p.net_connections(kind="tcp")
        except psutil.Error:
            continue
        count = sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port)
        if count:
            out[p.pid] = count
    return out


def split(samples: list[dict[int, int]]) -> tuple[int, ...]:
    """Each process's median count over the samples (0 where a sample lacks it), busiest first."""
    pids = {pid for sample in samples for pid in sample}
    medians = [int(statistics.median_low([sample.get(pid, 0) for sample in samples])) for pid in pids]
    return tuple(sorted((m for m in medians if m), reverse=True))


class TreeSampler:
    """Samples a process tree in a background thread between ``start`` and ``stop``; with
    ``port``, also how the established connections on that port split between its processes."""

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL_S, port: int | None = None) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.port = port
        self._connections: list[dict[int, int]] = []
        self._next_connections = 0.0
        self._stop = threading.Event()
        self._rss: list[float] = []
        self._threads_peak = 0
        self._procs_peak = 0
        self._cpu_start: dict[int, float] = {}
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)

    def start(self) -> None:
        self._cpu_start = _cpu_by_pid(_tree(self.root))
        self._thread.start()

    def _sample(self, connections: bool = True) -> None:
        rss = 0
        threads = 0
        procs = _tree(self.root)
        for p in procs:
            try:
                rss += p.memory_info().rss
                threads += p.num_threads()
            except psutil.Error:
                pass
        if procs:
            self._rss.append(rss / 2**20)
            self._threads_peak = max(self._threads_peak, threads)
            self._procs_peak = max(self._procs_peak, len(procs))
        now = time.monotonic()
        if connections and self.port is not None and procs and now >= self._next_connections:
            # The first sample waits one interval: the load generator is still connecting.
            if self._next_connections:
                by_pid = connections_by_pid(procs, self.port)
                if by_pid:
                    self._connections.append(by_pid)
            self._next_connections = now + CONNECTIONS_INTERVAL_S

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def stop(self) -> ResourceUsage:
        self._stop.set()
        self._thread.join()
        # Not the connections: the load generator has closed its own by now.
        self._sample(connections=False)
        cpu_end = _cpu_by_pid(_tree(self.root))
        cpu = sum(v - self._cpu_start.get(pid, 0.0) for pid, v in cpu_end.items())
        rss = self._rss or [0.0]
        return ResourceUsage(
            cpu_s=cpu,
            rss_peak_mib=max(rss),
            rss_mean_mib=sum(rss) / len(rss),
            threads_peak=self._threads_peak,
            processes_peak=self._procs_peak,
            samples=len(self._rss),
            connections_per_worker=split(self._connections),
        )
