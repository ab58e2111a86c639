"""Polling with a deadline: how a test waits for another process (or thread) to do something."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    details: Callable[[], str] | None = None,
) -> T:
    """Call `predicate` every `interval` s until it returns something truthy, and return that.

    After `timeout` s the test fails with an AssertionError naming `what` it waited for, followed by
    `details()` read at that moment (say, the logs of the processes involved). Callers that expect a
    wait may fail (a recovery that has a fallback) catch the AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{details()}" if details is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{extra}")
        time.sleep(interval)


def poll(read: Callable[[], T], *, until: Callable[[T], bool], timeout: float, interval: float = 0.5) -> T:
    """Call `read` every `interval` s until `until(value)` holds or `timeout` s have passed, and return
    the last value read: the caller asserts on it, with the details only it can give."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval)
