"""Sampling a process tree from outside (lab.resources): the connection split between workers."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import psutil
import pytest

from lab import resources
from lab.resources import TreeSampler, connections_by_pid, split


@pytest.fixture
def listening() -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    """A loopback listener holding three accepted connections (and their client ends)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    clients = [socket.create_connection(server.getsockname()) for _ in range(3)]
    accepted = [server.accept()[0] for _ in clients]
    yield server, accepted
    for s in [*clients, *accepted, server]:
        s.close()


def test_connections_are_counted_by_the_servers_port_only(listening: tuple[socket.socket, list[socket.socket]]) -> None:
    server, _ = listening
    port = server.getsockname()[1]
    me = psutil.Process(os.getpid())
    # The three accepted ends have the server's port; the client ends (also ours) and the
    # listening socket (not established) do not count.
    assert connections_by_pid([me], port) == {os.getpid(): 3}
    assert connections_by_pid([me], port + 1 if port < 65535 else port - 1) == {}


def test_split_takes_each_workers_median_busiest_first() -> None:
    samples = [{1: 30, 2: 2}, {1: 28, 2: 4}, {1: 31, 2: 1}, {2: 3}]
    assert split(samples) == (28, 2)
    assert split([]) == ()


def test_the_sampler_records_the_split_only_when_given_a_port(
    listening: tuple[socket.socket, list[socket.socket]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = listening
    monkeypatch.setattr(resources, "CONNECTIONS_INTERVAL_S", 0.02)
    with_port = TreeSampler(os.getpid(), interval=0.01, port=server.getsockname()[1])
    without = TreeSampler(os.getpid(), interval=0.01)
    with_port.start()
    without.start()
    time.sleep(0.3)
    assert with_port.stop().connections_per_worker == (3,)
    assert without.stop().connections_per_worker == ()
