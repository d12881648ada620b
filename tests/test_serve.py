from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from lab.errors import SpecError
from lab.proc import child_env, managed
from lab.serve import check_port_free, free_port, group_members, stop_server
from lab.servers import ServerConfig, command, parse_server


def test_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(SpecError, match=f"port {port} on 127.0.0.1 is already in use"):
            check_port_free(port)


def test_port_out_of_range() -> None:
    with pytest.raises(SpecError, match="port 70000 is out of range; accepted: 1..65535"):
        check_port_free(70000)


def test_free_port_is_bindable() -> None:
    check_port_free(free_port())


def test_same_pure_python_stack_on_both_interpreters() -> None:
    asgi = parse_server("uvicorn:1")
    cmd = command(asgi, Path("/venv/bin/python"), 8000)
    assert cmd[cmd.index("--loop") + 1] == "asyncio"
    assert cmd[cmd.index("--http") + 1] == "h11"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    wsgi = parse_server("gunicorn-gthread:1x8")
    assert wsgi == ServerConfig(kind="gunicorn-gthread", workers=1, threads=8)
    cmd = command(wsgi, Path("/venv/bin/python"), 8000)
    assert cmd[cmd.index("--bind") + 1] == "127.0.0.1:8000"
    assert wsgi.label == "gunicorn gthread 1x8"


@pytest.mark.parametrize(
    ("text", "interface", "flags"),
    [
        ("gunicorn-sync:4", "wsgi", {"--worker-class": "sync", "--workers": "4"}),
        ("gunicorn-gthread:2x16", "wsgi", {"--worker-class": "gthread", "--workers": "2", "--threads": "16"}),
        ("uvicorn:2", "asgi", {"--workers": "2", "--loop": "asyncio"}),
        ("granian-wsgi:1x8", "wsgi", {"--interface": "wsgi", "--blocking-threads": "8", "--loop": "asyncio"}),
        ("granian-asgi:2", "asgi", {"--interface": "asgi", "--workers": "2", "--loop": "asyncio"}),
    ],
)
def test_server_shapes_reach_the_command_line(text: str, interface: str, flags: dict[str, str]) -> None:
    config = parse_server(text)
    assert config.spec == text
    assert config.interface == interface
    cmd = command(config, Path("/venv/bin/python"), 8000)
    for flag, value in flags.items():
        assert cmd[cmd.index(flag) + 1] == value, flag
    assert "--threads" not in cmd or config.kind == "gunicorn-gthread"


def test_best_available_stack_is_labelled() -> None:
    best = parse_server("uvicorn:1").with_stack("uvloop", "httptools")
    assert best.label == "uvicorn 1w uvloop+httptools"
    assert best.metadata()["server_loop"] == "uvloop"
    assert parse_server("gunicorn-gthread:1x8").with_stack("uvloop", "httptools").label == "gunicorn gthread 1x8"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("meinheld:2", "unknown kind 'meinheld'"),
        ("gunicorn-gthread:8", "takes PxT"),
        ("uvicorn:1x8", "takes P "),
        ("gunicorn-sync:0", "processes must be 1..64"),
        ("gunicorn-gthread:1x999", "threads 1..256"),
    ],
)
def test_bad_server_is_a_one_line_error(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        parse_server(text)
    assert "\n" not in str(info.value)


def test_group_members_lists_this_process_and_nothing_for_an_unused_group() -> None:
    assert os.getpid() in group_members(os.getpgrp())
    assert group_members(2**22 + 12345) == []  # above any pid_max default: never a group


# A stand-in for uvicorn's supervisor and multiprocessing's resource tracker: the parent
# stops on SIGINT; the helper ignores it and ends on its own once its parent is gone.
HELPER = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
parent = os.getppid()
print("helper", "ready", flush=True)  # not the literal text: the log starts with the command
while os.getppid() == parent:
    time.sleep(0.05)
time.sleep(0.3)
open(sys.argv[1], "w").write("ended on its own")
"""
PARENT = """
import subprocess, sys, time
try:
    helper = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
    time.sleep(60)
except KeyboardInterrupt:
    sys.exit(0)
"""


@pytest.mark.functional
def test_stop_server_lets_the_group_end_on_its_own_before_killing_it(tmp_path: Path) -> None:
    marker = tmp_path / "helper-ended"
    log = tmp_path / "log"
    cmd = [sys.executable, "-c", PARENT, HELPER, str(marker)]
    with managed(cmd, name="stand-in", log_path=log, env=child_env(), stop_signal=signal.SIGINT) as server:
        server.wait_ready(lambda: "helper ready" in log.read_text(), timeout=30)
        code = stop_server(server)
    assert code == 0
    assert marker.read_text() == "ended on its own"
    assert group_members(server.pid) == []
