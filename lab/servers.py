"""Server configurations: which server, how many processes and threads, which loop.

Plans and the CLI name servers as ``kind:P`` or ``kind:PxT`` (e.g. ``gunicorn-gthread:1x8``);
this module turns that into a frozen ``ServerConfig`` and the command line that starts it.
``granian==2.7.9`` is pinned because later releases dropped 3.13t wheels.
"""

from __future__ import annotations

import signal
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

from lab.errors import SpecError

HOST = "127.0.0.1"
ServerKind = Literal["gunicorn-sync", "gunicorn-gthread", "uvicorn", "granian-wsgi", "granian-asgi"]
SERVER_KINDS: tuple[ServerKind, ...] = get_args(ServerKind)
# Kinds whose second number is threads per process ("PxT"); the others take "P" only.
THREADED_KINDS = frozenset({"gunicorn-gthread", "granian-wsgi"})
WSGI_KINDS = frozenset({"gunicorn-sync", "gunicorn-gthread", "granian-wsgi"})
# "same": asyncio + h11 on both interpreters (default: the measured stack is identical).
# "best-available": uvloop + httptools where they load without re-enabling the GIL
# (3.13 only today); the loop and parser used are in every cell's label and metadata.
Stack = Literal["same", "best-available"]
STACKS: tuple[Stack, ...] = get_args(Stack)
SERVER_FORMS = "gunicorn-sync:P, gunicorn-gthread:PxT, uvicorn:P, granian-wsgi:PxT, granian-asgi:P"
MAX_WORKERS, MAX_THREADS = 64, 256
# Seconds granian's main process waits for a worker that does not stop before killing it.
GRANIAN_WORKERS_KILL_TIMEOUT_S = 3


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    kind: ServerKind
    workers: int = 1
    threads: int = 1
    loop: str = "asyncio"
    http: str = "h11"

    @property
    def interface(self) -> str:
        return "wsgi" if self.kind in WSGI_KINDS else "asgi"

    @property
    def stop_signal(self) -> int:
        """The signal the lab sends to the server's whole process group to stop it.

        Chosen so that as many processes as possible end normally and write a final GIL
        report (the probe's watcher covers the rest, see ``gilprobe``):
        gunicorn: SIGTERM is its graceful stop; master and workers exit through
        ``sys.exit``. uvicorn: every worker re-raises the signals it caught after its
        own shutdown; SIGINT then becomes KeyboardInterrupt (a normal exit), SIGTERM
        kills it before ``atexit``. Its supervisor still sends SIGTERM to the workers
        once it sees the SIGINT (within 0.5 s), so a slow worker may die of that one.
        granian: SIGINT and SIGTERM both stop it gracefully; SIGINT as for uvicorn.
        """
        return signal.SIGTERM if self.kind.startswith("gunicorn") else signal.SIGINT

    @property
    def spec(self) -> str:
        """The plan/CLI form, e.g. ``gunicorn-gthread:1x8``: the key cells are grouped by."""
        shape = f"{self.workers}x{self.threads}" if self.kind in THREADED_KINDS else str(self.workers)
        return f"{self.kind}:{shape}"

    @property
    def label(self) -> str:
        name = self.kind.replace("-", " ")
        shape = f"{self.workers}x{self.threads}" if self.kind in THREADED_KINDS else f"{self.workers}w"
        stack = (
            "" if self.interface == "wsgi" else f" {self.loop}" + (f"+{self.http}" if self.kind == "uvicorn" else "")
        )
        return f"{name} {shape}{stack}"

    def metadata(self) -> dict[str, Any]:
        return {
            **{f"server_{k}": v for k, v in asdict(self).items()},
            "server_spec": self.spec,
            "server_label": self.label,
        }

    def with_stack(self, loop: str, http: str) -> ServerConfig:
        if self.interface == "wsgi":
            return self
        return replace(self, loop=loop, http=http if self.kind == "uvicorn" else "-")


def parse_server(text: str) -> ServerConfig:
    """``gunicorn-gthread:1x8`` -> ServerConfig; one-line SpecError naming the bad value."""
    kind, _, shape = text.strip().partition(":")
    if kind not in SERVER_KINDS:
        raise SpecError(f"server {text!r}: unknown kind {kind!r}; accepted: {SERVER_FORMS}")
    threaded = kind in THREADED_KINDS
    parts = shape.split("x") if threaded else [shape]
    if len(parts) != (2 if threaded else 1) or not all(p.isdigit() for p in parts):
        form = "PxT (processes x threads, e.g. 1x8)" if threaded else "P (processes, e.g. 2)"
        raise SpecError(f"server {text!r}: {kind} takes {form}; accepted: {SERVER_FORMS}")
    workers, threads = int(parts[0]), int(parts[1]) if threaded else 1
    if not 1 <= workers <= MAX_WORKERS or not 1 <= threads <= MAX_THREADS:
        raise SpecError(f"server {text!r}: processes must be 1..{MAX_WORKERS} and threads 1..{MAX_THREADS}")
    config = ServerConfig(kind=kind, workers=workers, threads=threads)
    return config.with_stack("asyncio", "h11")


def _listen(config: ServerConfig, port: int) -> list[str]:
    """Where uvicorn and granian listen and how many processes they run (same flags in both)."""
    return ["--host", HOST, "--port", str(port), "--workers", str(config.workers)]


def command(config: ServerConfig, python: Path, port: int) -> list[str]:
    if config.kind.startswith("gunicorn"):
        return [
            str(python),
            "-m",
            "gunicorn",
            "labsite.wsgi:application",
            "--worker-class",
            config.kind.removeprefix("gunicorn-"),
            "--workers",
            str(config.workers),
            *(["--threads", str(config.threads)] if config.kind == "gunicorn-gthread" else []),
            "--bind",
            f"{HOST}:{port}",
            "--log-level",
            "warning",
            # Keep-alive long enough for the load generator's persistent connections
            # (the sync worker closes after every response regardless).
            "--keep-alive",
            "75",
            "--backlog",
            "2048",
        ]
    if config.kind.startswith("granian"):
        threads = ["--blocking-threads", str(config.threads)] if config.interface == "wsgi" else []
        return [
            str(python),
            "-m",
            "granian",
            "--interface",
            config.interface,
            *_listen(config, port),
            *threads,
            "--http",
            "1",
            "--no-ws",
            "--loop",
            config.loop if config.interface == "asgi" else "asyncio",
            "--log-level",
            "warning",
            "--no-access-log",
            "--backlog",
            "2048",
            # granian 2.7.9's ASGI workers on 3.13 sometimes never finish a graceful stop
            # (about 1 stop in 6 here, with or without the GIL probe); without this its
            # main process waits for them forever and is SIGKILLed before its exit hooks.
            "--workers-kill-timeout",
            str(GRANIAN_WORKERS_KILL_TIMEOUT_S),
            f"labsite.{config.interface}:application",
        ]
    return [
        str(python),
        "-m",
        "uvicorn",
        "labsite.asgi:application",
        *_listen(config, port),
        "--loop",
        config.loop,
        "--http",
        config.http,
        "--lifespan",
        "off",
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-keep-alive",
        "75",
        "--backlog",
        "2048",
    ]


def expected_gil_reports(config: ServerConfig, *, free_threaded: bool) -> int:
    """How many processes a running server of this shape has, so how many GIL reports.

    Verified by starting each shape on both interpreters (``tests/test_servers.py``):
    - gunicorn (sync, gthread): the arbiter plus one forked process per worker, P + 1;
    - uvicorn with one worker: the server runs in the process the lab started, 1;
    - uvicorn with P > 1: the supervisor, P workers started with multiprocessing's
      ``spawn`` context, and multiprocessing's resource tracker, which ``spawn`` starts
      on the first child (a python process of the same venv, so it reports too): P + 2;
    - granian on 3.13t: its free-threaded build serves workers as threads of the one
      process (``MTServer``), 1 whatever P is;
    - granian on 3.13: the main process plus P workers forked by multiprocessing
      (``MPServer``, the default ``fork`` start method, no resource tracker): P + 1.
    """
    workers = config.workers
    if config.kind.startswith("gunicorn"):
        return workers + 1
    if config.kind == "uvicorn":
        return 1 if workers == 1 else workers + 2
    return 1 if free_threaded else workers + 1
