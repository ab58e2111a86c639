"""After-commit SSE notifications (the outbox handlers'), run synchronously by default, or on a few
background threads in the outbox consumer so its loop is not held by them.

An SSE push through django-eventstream's model storage costs ~4 ms (a locked counter row, an insert,
a Redis publish): done inline it capped the consumer at ~250 events/s. Notifications are best effort
either way (`sse_push` logs and swallows failures; the database holds the truth): the
pool's bounded queue applies back-pressure, and pending ones still run when the process exits
normally (the executor's exit hook drains its queue), not after a kill -9.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import close_old_connections, transaction

from common.sse.push import sse_push

log = logging.getLogger(__name__)

_pool: NotificationPool | None = None


class NotificationPool:
    def __init__(self, *, threads: int = 4, max_pending: int = 2000):
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="outbox-notify")
        self.slots = threading.BoundedSemaphore(max_pending)

    def submit(self, fn: Callable[[], None]) -> None:
        self.slots.acquire()  # back-pressure: the consumer waits when notifications fall behind
        try:
            self.executor.submit(self._run, fn)
        except RuntimeError:  # shutting down: run it here
            self.slots.release()
            fn()

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - a notification never breaks anything else
            log.exception("outbox notification failed")
        finally:
            self.slots.release()
            close_old_connections()  # only drops unusable/expired ones; the thread keeps its connection

    def drain(self) -> None:
        self.executor.shutdown(wait=True)


def use_background_notifications(*, threads: int = 4) -> NotificationPool:
    """From now on, notifications of this process run on `threads` background threads."""
    global _pool
    if _pool is None:
        _pool = NotificationPool(threads=threads)
    return _pool


def notify(fn: Callable[[], None]) -> None:
    """Run a notification: on the pool if this process has one, else now."""
    if _pool is not None:
        _pool.submit(fn)
    else:
        fn()


def stop_background_notifications() -> None:
    """Run what is pending, then run notifications inline again (tests, shutdown)."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.drain()


# A notification whose effect committed just before the database went away is retried this long
# (on the notification threads): a restart takes a few seconds.
NOTIFY_RETRY_SECONDS = 30.0


def notify_after_commit(user_id: int, event_type: str, data: dict[str, Any]) -> None:
    """SSE `event_type` to the user once the current transaction committed (on the notification
    threads when this process has them); a failure there is logged, never undoes anything."""
    push = functools.partial(sse_push, user_id, event_type, data, retry_seconds=NOTIFY_RETRY_SECONDS)
    transaction.on_commit(lambda: notify(push), robust=True)
