"""The worker processes' listening sockets: one each, on one port."""

import select
import socket

import pytest

from chatsite.workers import listening_sockets


def test_each_worker_gets_its_own_socket_on_the_same_port():
    socks = listening_sockets("127.0.0.1", 0, 3)
    try:
        ports = {sock.getsockname()[1] for sock in socks}

        assert len(socks) == 3
        assert len({sock.fileno() for sock in socks}) == 3
        assert len(ports) == 1
    finally:
        for sock in socks:
            sock.close()


def test_new_connections_are_spread_over_the_sockets():
    socks = listening_sockets("127.0.0.1", 0, 2)
    port = socks[0].getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    try:
        # Each connection waits in the queue of the socket the kernel picked for it.
        ready, _, _ = select.select(socks, [], [], 2.0)

        assert set(ready) == set(socks)  # all 40 on one socket: a chance of 1 in 2**39
    finally:
        for sock in [*clients, *socks]:
            sock.close()


def test_a_port_another_server_listens_on_is_refused_not_shared():
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", 0))
    other.listen()
    try:
        with pytest.raises(OSError):
            listening_sockets("127.0.0.1", other.getsockname()[1], 2)
    finally:
        other.close()
