"""Upstream simulator: a small asyncio HTTP/1.1 server standing in for external APIs.

Answers ``GET /?ms=L`` after L milliseconds with a fixed JSON body; ``&dist=exp`` draws each
delay from an exponential distribution of mean L (capped at 10 L, seeded, so every run sees
the same sequence of delays), for upstreams with a long tail. Started and stopped
by the lab as its own process on the standard interpreter, loopback only; its CPU time
is sampled like the server's so it is never the bottleneck unnoticed. Hand-written
because it must stay cheap (a few lines per request on 2 shared cores) and have no
dependency beyond the standard library.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from urllib.parse import parse_qs, urlsplit

BODY = json.dumps({"status": "ok", "invoice": "INV-0001", "pad": "x" * 200}, separators=(",", ":")).encode()
MAX_LATENCY_MS = 10_000
HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"


DISTRIBUTIONS = ("fixed", "exp")
SEED = 20261130
_rng = random.Random(SEED)


def latency_of(target: bytes, rng: random.Random = _rng) -> float | None:
    """Seconds to wait for a request target like ``/?ms=20&dist=exp``; None if malformed."""
    query = parse_qs(urlsplit(target.decode("latin-1")).query)
    try:
        ms = float(query.get("ms", ["0"])[0])
    except ValueError:
        return None
    dist = query.get("dist", ["fixed"])[0]
    if not 0 <= ms <= MAX_LATENCY_MS or dist not in DISTRIBUTIONS:
        return None
    if dist == "exp" and ms > 0:
        ms = min(rng.expovariate(1 / ms), 10 * ms)
    return ms / 1000


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            request_line = await reader.readline()
            if not request_line:
                break
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # GET only: headers are read and ignored
            parts = request_line.split()
            delay = latency_of(parts[1]) if len(parts) >= 2 else None
            if delay is None:
                writer.write(BAD)
            else:
                if delay:
                    await asyncio.sleep(delay)
                writer.write(HEADERS + BODY)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=2048)
    print(f"upstream listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
