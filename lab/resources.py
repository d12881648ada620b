"""Resource sampling of a server's process tree with psutil, from the lab's own process.

pyperf turns its psutil use off on free-threaded builds, and psutil inside the server
would be measured along with it, so the lab samples from outside: CPU time over the
measured window, peak and mean RSS, and thread counts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import psutil

SAMPLE_INTERVAL_S = 0.2


@dataclass(frozen=True, kw_only=True)
class ResourceUsage:
    cpu_s: float
    rss_peak_mib: float
    rss_mean_mib: float
    threads_peak: int
    processes_peak: int
    samples: int


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


class TreeSampler:
    """Samples a process tree in a background thread between ``start`` and ``stop``."""

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL_S) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self._stop = threading.Event()
        self._rss: list[float] = []
        self._threads_peak = 0
        self._procs_peak = 0
        self._cpu_start: dict[int, float] = {}
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)

    def start(self) -> None:
        self._cpu_start = _cpu_by_pid(_tree(self.root))
        self._thread.start()

    def _sample(self) -> None:
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

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def stop(self) -> ResourceUsage:
        self._stop.set()
        self._thread.join()
        self._sample()
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
        )
