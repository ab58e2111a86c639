"""Loopback ports: a free one for a server of our own, and waiting until something listens on it."""

from __future__ import annotations

import socket

from tests.support.waiting import wait_until


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick); the caller's server binds it next."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, *, timeout: float = 10.0) -> None:
    wait_until(lambda: listening(port), timeout=timeout, what=f"something to listen on port {port}", interval=0.05)
