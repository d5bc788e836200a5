"""The repo-wide network guard (``/conftest.py``) refuses the outside, allows loopback.

The refused attempts never send a packet: they use a *closed* socket, on which
a real ``connect`` could only fail with EBADF, so getting the guard's error
(and not ``OSError(EBADF)``) proves the guard raised before the real call.
"""

from __future__ import annotations

import socket
import tempfile
import threading
from pathlib import Path

import pytest

OUTSIDE = ("10.255.255.1", 80)  # private, unroutable: never actually reached


def _closed_socket(family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    s = socket.socket(family, kind)
    s.close()
    return s


@pytest.mark.parametrize("call", ["connect", "connect_ex"])
def test_outside_connection_is_refused_before_connecting(network_guard, call):
    s = _closed_socket()
    with pytest.raises(network_guard.error, match=r"10.255.255.1"):
        getattr(s, call)(OUTSIDE)
    assert len(network_guard.blocked) == 1
    network_guard.blocked.clear()  # expected: don't fail this test at teardown


def test_outside_ipv6_and_udp_send_are_refused(network_guard):
    with pytest.raises(network_guard.error):
        _closed_socket(socket.AF_INET6).connect(("2001:db8::1", 80, 0, 0))
    with pytest.raises(network_guard.error):
        _closed_socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("192.0.2.1", 53))
    assert len(network_guard.blocked) == 2
    network_guard.blocked.clear()


def test_names_are_refused_without_resolving(network_guard):
    # The guard must refuse the name itself: resolving it would already be a DNS query.
    with pytest.raises(network_guard.error, match=r"example.invalid"):
        socket.create_connection(("example.invalid", 80), timeout=0.1)
    with pytest.raises(network_guard.error, match=r"example.invalid"):
        socket.getaddrinfo("example.invalid", 443)
    with pytest.raises(network_guard.error, match=r"example.invalid"):
        _closed_socket().connect(("example.invalid", 80))
    assert len(network_guard.blocked) == 3
    network_guard.blocked.clear()


def test_swallowed_attempt_still_fails_the_test(network_guard):
    try:
        _closed_socket().connect(OUTSIDE)
    except Exception:
        pass  # what a careless library would do
    with pytest.raises(pytest.fail.Exception, match="network access attempted"):
        network_guard.fail_if_blocked()
    assert network_guard.blocked == []


def _echo_server(listener: socket.socket) -> threading.Thread:
    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(conn.recv(16)[::-1])

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_is_allowed(network_guard, host):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(5)
        port = listener.getsockname()[1]
        server = _echo_server(listener)
        with socket.create_connection((host, port), timeout=5) as c:
            c.sendall(b"abc")
            assert c.recv(16) == b"cba"
        server.join(5)
    assert network_guard.blocked == []


def test_ipv4_mapped_loopback_is_loopback(network_guard):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as c:
            c.settimeout(5)
            assert c.connect_ex(("127.0.0.1", port)) == 0
    # The address check alone: ::ffff:127.0.0.1 is loopback, ::ffff:10.0.0.1 is not.
    network_guard.check(socket.AF_INET6, ("::ffff:127.0.0.1", 80, 0, 0), "probe")
    with pytest.raises(network_guard.error):
        network_guard.check(socket.AF_INET6, ("::ffff:10.0.0.1", 80, 0, 0), "probe")
    network_guard.blocked.clear()


def test_unix_socket_is_allowed(network_guard):
    with tempfile.TemporaryDirectory(dir="/tmp") as d:  # short path: AF_UNIX limit is 108 bytes
        path = str(Path(d) / "s")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(path)
            listener.listen(1)
            listener.settimeout(5)
            server = _echo_server(listener)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.connect(path)
                c.sendall(b"xyz")
                assert c.recv(16) == b"zyx"
            server.join(5)
    assert network_guard.blocked == []
