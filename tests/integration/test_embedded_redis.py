"""The embedded redis-server: a port someone else took between pick and bind."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

import streamscribe.embedded as embedded
from streamscribe.embedded import RedisServerProcess


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_picked_port_that_is_taken_is_replaced(
    taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_free_port = embedded.free_port
    picks = iter([taken_port])
    monkeypatch.setattr(embedded, "free_port", lambda: next(picks, None) or real_free_port())
    server = RedisServerProcess(appendonly=False)
    assert server.port == taken_port
    with server:
        assert server.port != taken_port
        assert server._ping()


def test_a_named_port_that_is_taken_is_an_error(taken_port: int) -> None:
    server = RedisServerProcess(port=taken_port, appendonly=False)
    with pytest.raises(RuntimeError, match=f"port {taken_port} is taken"):
        server.start()
    server.close()


def test_a_restart_keeps_the_port_even_when_it_is_taken() -> None:
    """Clients hold the URL: after the first start the port never changes."""
    server = RedisServerProcess(appendonly=False)
    with server:
        port = server.port
        server.stop()
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
            sock.bind(("127.0.0.1", port))
            sock.listen()
            with pytest.raises(RuntimeError, match=f"port {port} is taken"):
                server.start()
        assert server.port == port
