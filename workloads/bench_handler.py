"""Handler tier: a pyperf benchmark of one endpoint variant, driven in-process.

Run by the lab inside each interpreter's environment. ``sync`` (WSGI) is driven from
T threads, the ASGI variants from C concurrent tasks on one event loop: what a
threaded server and an async server each do with concurrency C, minus the sockets.
pyperf's value is wall time per request at that concurrency (1 / throughput).
Requests carry the lab client's cookie, and the mix's method, body and headers
(``--method``, ``--body``, ``--header``) when it has them.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labsite.settings")

import benchkit
import django
import pyperf
from labsite import inprocess


def add_cmdline_args(cmd: list[str], args: object) -> None:
    cmd.extend(["--variant", args.variant, "--concurrency", str(args.concurrency)])  # type: ignore[attr-defined]
    cmd.extend(["--endpoint", args.endpoint, "--query", args.query])  # type: ignore[attr-defined]
    cmd.extend(["--bench-name", args.bench_name])  # type: ignore[attr-defined]
    cmd.extend(["--method", args.method, "--body", args.body])  # type: ignore[attr-defined]
    for header in args.header:  # type: ignore[attr-defined]
        cmd.extend(["--header", header])


def main() -> None:
    runner = pyperf.Runner(add_cmdline_args=add_cmdline_args)
    runner.argparser.add_argument("--variant", required=True, choices=sorted(inprocess.VARIANTS))
    runner.argparser.add_argument("--concurrency", type=int, default=1)
    runner.argparser.add_argument("--endpoint", required=True)
    runner.argparser.add_argument("--query", default="")
    runner.argparser.add_argument("--bench-name", required=True)
    runner.argparser.add_argument("--method", default="GET")
    runner.argparser.add_argument("--body", default="")
    runner.argparser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    args = runner.parse_args()
    django.setup()
    interface, path, query = inprocess.target(args.endpoint, args.variant, args.query)
    runner.metadata["lab_variant"] = args.variant
    runner.metadata["lab_concurrency"] = args.concurrency
    runner.metadata["lab_interface"] = interface
    runner.metadata["lab_endpoint"] = args.endpoint
    runner.metadata["lab_query"] = args.query or "-"
    runner.metadata["lab_method"] = args.method.upper()

    request = {
        "method": args.method.upper(),
        "body": args.body.encode(),
        "headers": (*inprocess.CLIENT_HEADERS, *(inprocess.parse_header(h) for h in args.header)),
    }

    def checked(status: int) -> None:
        if status != 200:
            raise RuntimeError(f"{path}?{query} returned {status}")

    if interface == "wsgi":
        wsgi = inprocess.wsgi_app()
        time_func = benchkit.threaded(
            args.concurrency, lambda: checked(inprocess.call_wsgi(wsgi, path, query, **request)[0])
        )
    else:
        asgi = inprocess.asgi_app()

        async def one() -> None:
            checked((await inprocess.call_asgi(asgi, path, query, **request))[0])

        time_func = benchkit.tasks(args.concurrency, one)
    runner.bench_time_func(args.bench_name, time_func)


if __name__ == "__main__":
    main()
