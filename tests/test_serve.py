from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lab.errors import SpecError
from lab.serve import ServerConfig, check_port_free, command, free_port, server_for


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
    asgi = server_for("asgi", threads=8)
    cmd = command(asgi, Path("/venv/bin/python"), 8000)
    assert cmd[cmd.index("--loop") + 1] == "asyncio"
    assert cmd[cmd.index("--http") + 1] == "h11"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    wsgi = server_for("wsgi", threads=8)
    assert wsgi == ServerConfig(kind="gunicorn-gthread", workers=1, threads=8)
    cmd = command(wsgi, Path("/venv/bin/python"), 8000)
    assert cmd[cmd.index("--bind") + 1] == "127.0.0.1:8000"
    assert wsgi.label == "gunicorn gthread 1x8"
