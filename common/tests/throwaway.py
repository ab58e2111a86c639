"""Throw-away real servers for tests that must stop a dependency without disturbing the shared ones."""

from __future__ import annotations

import contextlib
import copy
import socket
import subprocess
import time
from collections.abc import Iterator

from django.conf import settings
from django.test import override_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


@contextlib.contextmanager
def throwaway_redis() -> Iterator[subprocess.Popen]:
    """A real redis-server on a free port, with the caches pointed at it. Terminate it to simulate an outage."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        caches = copy.deepcopy(settings.CACHES)
        for cache in caches.values():
            cache["LOCATION"] = f"redis://127.0.0.1:{port}/0"
        with override_settings(CACHES=caches):
            yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)
