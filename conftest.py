"""Repo-wide test fixtures: a guard that keeps every test off the network.

The contract (docs: "never touch the network") is enforced, not hoped for: in
every test, a socket connection, a UDP send or a name lookup that would leave
the machine raises :class:`NetworkAccessError` *before* anything is sent, and
the attempt is recorded so that a library which swallows the exception still
fails the test at teardown. Allowed: loopback (127.0.0.0/8, ::1, IPv4-mapped
loopback, ``localhost``) and every non-IP family (AF_UNIX, netlink …), which
cannot leave the machine. A host name other than ``localhost`` is refused
without being resolved, since resolving it is already a DNS query.

Only this process is guarded; tests that launch subprocesses (``multiproc``)
must keep those on loopback themselves.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

_IP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class NetworkAccessError(RuntimeError):
    """A test tried to reach a non-loopback address.

    Deliberately not an ``OSError``: libraries treat ``OSError`` as "offline"
    and carry on quietly, which would hide the attempt.
    """


def _is_loopback_host(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    if host.lower() in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False  # any other name: refuse without resolving it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


@dataclass
class NetworkGuard:
    """What the autouse fixture yields: the refused attempts of this test."""

    blocked: list[str] = field(default_factory=list)
    error: type[Exception] = NetworkAccessError

    def check(self, family: int, address: object, what: str) -> None:
        if family not in _IP_FAMILIES:
            return
        host = address[0] if isinstance(address, tuple) and address else address
        if _is_loopback_host(host):
            return
        msg = f"{what} to {address!r} blocked: tests must not touch the network (only loopback is allowed)"
        self.blocked.append(msg)
        raise NetworkAccessError(msg)

    def check_lookup(self, host: object) -> None:
        if host is None:
            return  # getaddrinfo(None, port): a local wildcard / loopback address
        name = host.decode(errors="replace") if isinstance(host, bytes) else str(host)
        if _is_loopback_host(name) or _is_ip_literal(name) or name in ("", socket.gethostname()):
            return  # no DNS query: a literal, loopback, or this machine's own name (/etc/hosts)
        msg = f"name lookup of {name!r} blocked: tests must not touch the network (a DNS query is traffic)"
        self.blocked.append(msg)
        raise NetworkAccessError(msg)

    def fail_if_blocked(self) -> None:
        """Fail the test when any attempt was refused, even if its caller swallowed the error."""
        if self.blocked:
            attempts, self.blocked = self.blocked, []
            pytest.fail("network access attempted:\n  " + "\n  ".join(attempts), pytrace=False)


@pytest.fixture(autouse=True)
def network_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkGuard]:
    """Refuse every non-loopback connection, send and lookup for the duration of a test."""
    guard = NetworkGuard()
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_sendto = socket.socket.sendto
    real_create_connection, real_getaddrinfo = socket.create_connection, socket.getaddrinfo

    def connect(sock: socket.socket, address: object) -> None:
        guard.check(sock.family, address, "socket.connect")
        return real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: object) -> int:
        guard.check(sock.family, address, "socket.connect_ex")
        return real_connect_ex(sock, address)

    def sendto(sock: socket.socket, data: bytes, *args: object) -> int:
        guard.check(sock.family, args[-1] if args else None, "socket.sendto")
        return real_sendto(sock, data, *args)

    def create_connection(address: tuple, *args: object, **kwargs: object) -> socket.socket:
        # Checked here too, before create_connection resolves the name.
        guard.check(socket.AF_INET, address, "socket.create_connection")
        return real_create_connection(address, *args, **kwargs)

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> list:
        guard.check_lookup(host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield guard
    guard.fail_if_blocked()
