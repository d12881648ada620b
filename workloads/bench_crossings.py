"""Boundary-crossing microbenchmarks: what one sync<->async hop costs, and under contention.

Run by the lab in each interpreter's environment (``lab crossings``). Kinds:

- ``sync_to_async``: an ``async def`` awaiting ``sync_to_async(f)()`` (thread_sensitive=True,
  Django's default: every call goes to one shared thread);
- ``sync_to_async-ts-off``: the same with thread_sensitive=False (a thread pool);
- ``async_to_sync``: a sync caller running ``async_to_sync(coro)()``;
- ``executor``: a plain ``loop.run_in_executor`` hop, the floor any bridge pays;
- ``direct``: the same work called inline, with no hop: the baseline.

With C concurrent callers (tasks for the async side, threads for ``async_to_sync``), the
pyperf value is wall time per crossing; on the free-threaded build the thread_sensitive
hop still funnels through one thread, which is what the claim "thread_sensitive serializes
work" is about.
"""

from __future__ import annotations

import asyncio
import os
import sys

from asgiref.sync import async_to_sync, sync_to_async

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchkit

KINDS = ("direct", "sync_to_async", "sync_to_async-ts-off", "async_to_sync", "executor")
# Pure-Python work per call (tens of µs, like a small ORM helper): enough that running the
# calls in parallel could matter, so thread_sensitive's serialization can show.
WORK_ITERATIONS = 2000


def sync_work() -> int:
    total = 0
    for i in range(WORK_ITERATIONS):
        total += i * i
    return total


async def async_work() -> int:
    return sync_work()


def main() -> None:
    runner, args = benchkit.kind_runner(KINDS)
    runner.metadata["lab_crossing_kind"] = args.kind

    if args.kind == "direct":
        # The same work called inline from threads: the baseline each hop's cost is read against.
        time_func = benchkit.threaded(args.concurrency, sync_work)
    elif args.kind == "async_to_sync":
        time_func = benchkit.threaded(args.concurrency, async_to_sync(async_work))
    elif args.kind == "executor":

        async def hop() -> int:
            return await asyncio.get_running_loop().run_in_executor(None, sync_work)

        time_func = benchkit.tasks(args.concurrency, hop)
    else:
        time_func = benchkit.tasks(
            args.concurrency, sync_to_async(sync_work, thread_sensitive=args.kind == "sync_to_async")
        )
    runner.bench_time_func(args.bench_name, time_func)


if __name__ == "__main__":
    main()
