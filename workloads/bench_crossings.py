"""Boundary-crossing microbenchmarks: what one sync<->async hop costs, and under contention.

Run by the lab in each interpreter's environment (``lab crossings``). Kinds:

- ``sync_to_async``: an ``async def`` awaiting ``sync_to_async(f)()`` (thread_sensitive=True,
  Django's default: every call goes to one shared thread);
- ``sync_to_async-ts-off``: the same with thread_sensitive=False (a thread pool);
- ``async_to_sync``: a sync caller running ``async_to_sync(coro)()``;
- ``executor``: a plain ``loop.run_in_executor`` hop, the floor any bridge pays.

With C concurrent callers (tasks for the async side, threads for ``async_to_sync``), the
pyperf value is wall time per crossing; on the free-threaded build the thread_sensitive
hop still funnels through one thread, which is what the claim "thread_sensitive serializes
work" is about.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pyperf
from asgiref.sync import async_to_sync, sync_to_async

KINDS = ("sync_to_async", "sync_to_async-ts-off", "async_to_sync", "executor")
WORK_ITERATIONS = 50  # a little pure-Python work per call, like a tiny ORM helper


def sync_work() -> int:
    total = 0
    for i in range(WORK_ITERATIONS):
        total += i * i
    return total


async def async_work() -> int:
    return sync_work()


def add_cmdline_args(cmd: list[str], args: object) -> None:
    cmd.extend(["--kind", args.kind, "--concurrency", str(args.concurrency)])  # type: ignore[attr-defined]
    cmd.extend(["--bench-name", args.bench_name])  # type: ignore[attr-defined]


def main() -> None:
    runner = pyperf.Runner(add_cmdline_args=add_cmdline_args)
    runner.argparser.add_argument("--kind", required=True, choices=KINDS)
    runner.argparser.add_argument("--concurrency", type=int, default=1)
    runner.argparser.add_argument("--bench-name", required=True)
    args = runner.parse_args()
    concurrency = args.concurrency
    runner.metadata["lab_crossing_kind"] = args.kind
    runner.metadata["lab_concurrency"] = concurrency

    def shares(loops: int) -> list[int]:
        return [loops // concurrency + (1 if i < loops % concurrency else 0) for i in range(concurrency)]

    if args.kind == "async_to_sync":
        pool = ThreadPoolExecutor(concurrency)
        call = async_to_sync(async_work)

        def caller(n: int) -> None:
            for _ in range(n):
                call()

        list(pool.map(caller, [1] * concurrency))

        def time_func(loops: int) -> float:
            t0 = time.perf_counter()
            for future in [pool.submit(caller, n) for n in shares(loops) if n]:
                future.result()
            return time.perf_counter() - t0

    else:
        loop = asyncio.new_event_loop()
        if args.kind == "executor":

            async def hop() -> int:
                return await asyncio.get_running_loop().run_in_executor(None, sync_work)

        else:
            bridged = sync_to_async(sync_work, thread_sensitive=args.kind == "sync_to_async")

            async def hop() -> int:
                return await bridged()

        async def task(n: int) -> None:
            for _ in range(n):
                await hop()

        async def batch(loops: int) -> None:
            await asyncio.gather(*(task(n) for n in shares(loops) if n))

        loop.run_until_complete(batch(concurrency))

        def time_func(loops: int) -> float:
            t0 = time.perf_counter()
            loop.run_until_complete(batch(loops))
            return time.perf_counter() - t0

    runner.bench_time_func(args.bench_name, time_func)


if __name__ == "__main__":
    main()
