"""Shared drivers for the pyperf scripts: C concurrent callers as threads or as tasks.

Both return a pyperf ``time_func``: it splits ``loops`` calls over the callers and returns
the wall time for all of them, so pyperf's value is wall time per call at concurrency C.
Threads and the event loop are created and warmed up before timing starts.
"""

from __future__ import annotations

import asyncio
import atexit
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


def tasks_in_contexts(concurrency: int, call: Callable[[], Awaitable[Any]]) -> Callable[[int], float]:
    """C long-lived tasks on one event loop, each inside its own asgiref ``ThreadSensitiveContext``,
    each awaiting ``call()`` their share of times.

    Each task stands for one ASGI request in Django's handler (which enters a fresh context
    per request): the context's single worker thread is created by the warm-up call and
    then reused, so the timed calls measure the warm in-request hop, not the thread start.
    The tasks outlive each ``time_func`` call (they wait on a queue for their next share),
    so their contexts, and threads, are never rebuilt while timing.
    """
    from asgiref.sync import ThreadSensitiveContext

    loop = asyncio.new_event_loop()
    inboxes: list[asyncio.Queue[int]] = []
    done: asyncio.Queue[None] = asyncio.Queue()

    async def worker(inbox: asyncio.Queue[int]) -> None:
        async with ThreadSensitiveContext():
            while (n := await inbox.get()) >= 0:
                for _ in range(n):
                    await call()
                done.put_nowait(None)

    async def start() -> None:
        for _ in range(concurrency):
            inbox: asyncio.Queue[int] = asyncio.Queue()
            inboxes.append(inbox)
            # The loop keeps a strong reference to its pending tasks; keep one too.
            workers.append(loop.create_task(worker(inbox)))

    async def batch(loops: int) -> None:
        split = shares(loops, concurrency)
        for inbox, n in zip(inboxes, split, strict=False):
            inbox.put_nowait(n)
        for _ in split:
            await done.get()

    def stop() -> None:
        # Leave each context inside its own task (asgiref resets a context variable on exit,
        # which fails from any other context) and join its thread before the process ends.
        for inbox in inboxes:
            inbox.put_nowait(-1)
        loop.run_until_complete(asyncio.gather(*workers))
        loop.close()

    workers: list[asyncio.Task[None]] = []
    loop.run_until_complete(start())
    loop.run_until_complete(batch(concurrency))  # every context's thread exists before timing
    atexit.register(stop)

    def time_func(loops: int) -> float:
        t0 = time.perf_counter()
        loop.run_until_complete(batch(loops))
        return time.perf_counter() - t0

    return time_func


def sequential(call: Callable[[], Awaitable[Any]]) -> Callable[[int], float]:
    """One caller on one event loop awaiting ``call()`` ``loops`` times in a row: the value is
    wall time per call, for a ``call`` that is a whole request with its own internal concurrency."""
    loop = asyncio.new_event_loop()

    async def run(loops: int) -> None:
        for _ in range(loops):
            await call()

    loop.run_until_complete(run(2))  # warm the loop and the default executor's threads

    def time_func(loops: int) -> float:
        t0 = time.perf_counter()
        loop.run_until_complete(run(loops))
        return time.perf_counter() - t0

    return time_func
