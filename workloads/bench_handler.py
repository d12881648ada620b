"""Handler tier: a pyperf benchmark of one endpoint variant, driven in-process.

Run by the lab inside each interpreter's environment. ``sync`` (WSGI) is driven from
T threads, the ASGI variants from C concurrent tasks on one event loop: what a
threaded server and an async server each do with concurrency C, minus the sockets.
pyperf's value is wall time per request at that concurrency (1 / throughput).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labsite.settings")

import django
import pyperf
from labsite import inprocess


def add_cmdline_args(cmd: list[str], args: object) -> None:
    cmd.extend(["--variant", args.variant, "--concurrency", str(args.concurrency)])  # type: ignore[attr-defined]
    cmd.extend(["--endpoint", args.endpoint, "--query", args.query])  # type: ignore[attr-defined]
    cmd.extend(["--bench-name", args.bench_name])  # type: ignore[attr-defined]


def main() -> None:
    runner = pyperf.Runner(add_cmdline_args=add_cmdline_args)
    runner.argparser.add_argument("--variant", required=True, choices=sorted(inprocess.VARIANTS))
    runner.argparser.add_argument("--concurrency", type=int, default=1)
    runner.argparser.add_argument("--endpoint", required=True)
    runner.argparser.add_argument("--query", default="")
    runner.argparser.add_argument("--bench-name", required=True)
    args = runner.parse_args()
    django.setup()
    interface, path, query = inprocess.target(args.endpoint, args.variant, args.query)
    concurrency = args.concurrency
    runner.metadata["lab_variant"] = args.variant
    runner.metadata["lab_concurrency"] = concurrency
    runner.metadata["lab_interface"] = interface
    runner.metadata["lab_endpoint"] = args.endpoint
    runner.metadata["lab_query"] = args.query or "-"

    if interface == "wsgi":
        app = inprocess.wsgi_app()
        pool = ThreadPoolExecutor(concurrency)
        # Start the threads before timing so thread creation is not measured.
        list(pool.map(lambda _: inprocess.call_wsgi(app, path, query), range(concurrency)))

        def worker(n: int) -> None:
            for _ in range(n):
                status, _body, _headers = inprocess.call_wsgi(app, path, query)
                if status != 200:
                    raise RuntimeError(f"{path} returned {status}")

        def time_func(loops: int) -> float:
            shares = [loops // concurrency + (1 if i < loops % concurrency else 0) for i in range(concurrency)]
            t0 = time.perf_counter()
            for future in [pool.submit(worker, n) for n in shares if n]:
                future.result()
            return time.perf_counter() - t0

    else:
        app = inprocess.asgi_app()
        loop = asyncio.new_event_loop()

        async def task(n: int) -> None:
            for _ in range(n):
                status, _body, _headers = await inprocess.call_asgi(app, path, query)
                if status != 200:
                    raise RuntimeError(f"{path} returned {status}")

        async def batch(loops: int) -> None:
            shares = [loops // concurrency + (1 if i < loops % concurrency else 0) for i in range(concurrency)]
            await asyncio.gather(*(task(n) for n in shares if n))

        loop.run_until_complete(batch(concurrency))

        def time_func(loops: int) -> float:
            t0 = time.perf_counter()
            loop.run_until_complete(batch(loops))
            return time.perf_counter() - t0

    runner.bench_time_func(args.bench_name, time_func)


if __name__ == "__main__":
    main()
