"""Shared drivers for the pyperf scripts: C concurrent callers as threads or as tasks.

Both return a pyperf ``time_func``: it splits ``loops`` calls over the callers and returns
the wall time for all of them, so pyperf's value is wall time per call at concurrency C.
Threads and the event loop are created and warmed up before timing starts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def kind_runner(kinds: tuple[str, ...]) -> tuple[Any, Any]:
    """A pyperf Runner taking ``--kind``, ``--concurrency`` and ``--bench-name``, and its parsed args.

    The options are passed on to pyperf's worker processes, which parse them again.
    """
    import pyperf

    def add_cmdline_args(cmd: list[str], args: Any) -> None:
        cmd.extend(["--kind", args.kind, "--concurrency", str(args.concurrency), "--bench-name", args.bench_name])

    runner = pyperf.Runner(add_cmdline_args=add_cmdline_args)
    runner.argparser.add_argument("--kind", required=True, choices=kinds)
    runner.argparser.add_argument("--concurrency", type=int, default=1)
    runner.argparser.add_argument("--bench-name", required=True)
    args = runner.parse_args()
    runner.metadata["lab_concurrency"] = args.concurrency
    return runner, args


def shares(loops: int, concurrency: int) -> list[int]:
    """``loops`` split as evenly as possible over ``concurrency`` callers (no zero shares)."""
    split = [loops // concurrency + (1 if i < loops % concurrency else 0) for i in range(concurrency)]
    return [n for n in split if n]


def threaded(concurrency: int, call: Callable[[], Any]) -> Callable[[int], float]:
    """C threads each calling ``call`` their share of times."""
    pool = ThreadPoolExecutor(concurrency)

    def caller(n: int) -> None:
        for _ in range(n):
            call()

    list(pool.map(caller, [1] * concurrency))  # start (and warm) every thread before timing

    def time_func(loops: int) -> float:
        t0 = time.perf_counter()
        for future in [pool.submit(caller, n) for n in shares(loops, concurrency)]:
            future.result()
        return time.perf_counter() - t0

    return time_func


def tasks(concurrency: int, call: Callable[[], Awaitable[Any]]) -> Callable[[int], float]:
    """C tasks on one event loop, each awaiting ``call()`` their share of times."""
    loop = asyncio.new_event_loop()

    async def task(n: int) -> None:
        for _ in range(n):
            await call()

    async def batch(loops: int) -> None:
        await asyncio.gather(*(task(n) for n in shares(loops, concurrency)))

    loop.run_until_complete(batch(concurrency))

    def time_func(loops: int) -> float:
        t0 = time.perf_counter()
        loop.run_until_complete(batch(loops))
        return time.perf_counter() - t0

    return time_func
