"""HTTP client cost per call: what the sync and async clients themselves spend.

One upstream call at zero latency (``LAB_UPSTREAM_URL``, the lab's simulator) per
iteration, with C concurrent callers: ``httpx-sync`` from threads on one shared
``httpx.Client`` (as the ``sync`` views use it), ``httpx-async`` and ``aiohttp`` from tasks
on one event loop (as the ``async`` views use them). The value is wall time per call;
client CPU can differ by 2x or more between these and decide a comparison on its own,
so the report shows it apart from the endpoint results.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchkit
from shop import upstream_clients as clients

KINDS = ("httpx-sync", "httpx-async", "aiohttp")


def main() -> None:
    runner, args = benchkit.kind_runner(KINDS)
    runner.metadata["lab_crossing_kind"] = f"client/{args.kind}"
    if args.kind == "httpx-sync":
        time_func = benchkit.threaded(args.concurrency, lambda: clients.sync_get(0))
    else:
        kind = "aiohttp" if args.kind == "aiohttp" else "httpx"
        time_func = benchkit.tasks(args.concurrency, lambda: clients.async_get(0, kind))
    runner.bench_time_func(args.bench_name, time_func)


if __name__ == "__main__":
    main()
