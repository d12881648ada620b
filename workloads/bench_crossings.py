"""Boundary-crossing microbenchmarks: what one sync<->async hop costs, on each path Django has.

Run by the lab in each interpreter's environment (``lab crossings``). Django runs every
ASGI request inside its own asgiref ``ThreadSensitiveContext`` (``ASGIHandler.__call__``),
so a request's first thread-sensitive ``sync_to_async`` call starts a new worker thread
(the cold path) and its later calls reuse it (the in-request path). Code outside any
request (management commands, tests, this lab's older kinds) uses asgiref's one global
thread instead. The kinds:

One hop per call, with C concurrent callers (tasks; threads for ``async_to_sync``);
the pyperf value is wall time per call:

- ``direct``: the work called inline, with no hop: the baseline each hop is read against;
- ``sync_to_async``: ``await sync_to_async(f)()`` with thread_sensitive=True and no
  context, i.e. on asgiref's GLOBAL single-thread executor (every caller shares it);
- ``sync_to_async-ts-off``: the same with thread_sensitive=False (the loop's default pool),
  also outside any request context;
- ``sync_to_async-request``: the IN-REQUEST path: each caller is a request holding its own
  ``ThreadSensitiveContext`` whose thread is already running (warm executor);
- ``sync_to_async-cold``: the COLD path: each call enters a fresh ``ThreadSensitiveContext``
  (a new worker thread, joined on exit), as a request's first crossing does;
- ``async_to_sync``: a sync caller running ``async_to_sync(coro)()``;
- ``executor``: a plain ``loop.run_in_executor`` hop, the floor any bridge pays.

One request per call (the C2 claim, "thread_sensitive serializes concurrent work", as it
happens inside Django): ``request-gather-ts-{on,off}-{py,release}`` enter a fresh
``ThreadSensitiveContext`` (as Django does per request) and await ``asyncio.gather`` of C
``sync_to_async`` helpers, thread_sensitive on or off; the pyperf value is wall time per
request. ``py`` work is pure Python and holds the GIL on 3.13, so there on and off are
serialised alike; ``release`` work is hashlib.sha256 of a 1 MiB buffer, which releases the
GIL, so off can overlap the C helpers on any build while on runs them one after another
on the request's single thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from collections.abc import Awaitable, Callable

from asgiref.sync import ThreadSensitiveContext, async_to_sync, sync_to_async

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchkit

KINDS = (
    "direct",
    "sync_to_async",
    "sync_to_async-ts-off",
    "sync_to_async-request",
    "sync_to_async-cold",
    "async_to_sync",
    "executor",
    "request-gather-ts-on-py",
    "request-gather-ts-off-py",
    "request-gather-ts-on-release",
    "request-gather-ts-off-release",
)
# Pure-Python work per hop (tens to a couple of hundred µs, like a small ORM helper): the
# same for every one-hop kind, so hop minus direct is the hop's own cost.
WORK_ITERATIONS = 2000
# Per helper in the request-gather kinds: about a millisecond either way, so C helpers run
# one after another cost C ms and overlapped cost visibly less, against a thread start of
# ~0.1-0.3 ms that thread_sensitive=True also pays once per request.
REQUEST_PY_ITERATIONS = 10_000
RELEASE_BUFFER = bytes(range(256)) * 4096  # 1 MiB; hashlib drops the GIL above 2 KiB


def sync_work() -> int:
    total = 0
    for i in range(WORK_ITERATIONS):
        total += i * i
    return total


async def async_work() -> int:
    return sync_work()


def py_helper() -> int:
    total = 0
    for i in range(REQUEST_PY_ITERATIONS):
        total += i * i
    return total


def release_helper() -> int:
    return len(hashlib.sha256(RELEASE_BUFFER).digest())


def request_gather(helpers: int, thread_sensitive: bool, work: Callable[[], int]) -> Callable[[], Awaitable[None]]:
    """One request as Django's ASGI handler runs it: a fresh context, C helpers gathered."""
    bridged = sync_to_async(work, thread_sensitive=thread_sensitive)

    async def request() -> None:
        async with ThreadSensitiveContext():
            await asyncio.gather(*(bridged() for _ in range(helpers)))

    return request


def main() -> None:
    runner, args = benchkit.kind_runner(KINDS)
    runner.metadata["lab_crossing_kind"] = args.kind
    kind: str = args.kind

    if kind == "direct":
        # The same work called inline from threads: the baseline each hop's cost is read against.
        time_func = benchkit.threaded(args.concurrency, sync_work)
    elif kind == "async_to_sync":
        time_func = benchkit.threaded(args.concurrency, async_to_sync(async_work))
    elif kind == "executor":

        async def hop() -> int:
            return await asyncio.get_running_loop().run_in_executor(None, sync_work)

        time_func = benchkit.tasks(args.concurrency, hop)
    elif kind == "sync_to_async-request":
        time_func = benchkit.tasks_in_contexts(args.concurrency, sync_to_async(sync_work))
    elif kind == "sync_to_async-cold":
        bridged = sync_to_async(sync_work)

        async def cold() -> int:
            async with ThreadSensitiveContext():
                return await bridged()

        time_func = benchkit.tasks(args.concurrency, cold)
    elif kind.startswith("request-gather-"):
        runner.metadata["lab_request_helpers"] = args.concurrency
        work = release_helper if kind.endswith("-release") else py_helper
        request = request_gather(args.concurrency, "-ts-on-" in kind, work)
        time_func = benchkit.sequential(request)
    else:
        time_func = benchkit.tasks(args.concurrency, sync_to_async(sync_work, thread_sensitive=kind == "sync_to_async"))
    runner.bench_time_func(args.bench_name, time_func)


if __name__ == "__main__":
    main()
