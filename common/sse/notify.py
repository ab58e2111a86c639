"""SSE notifications of the outbox handlers: stored in the transaction that applies the events,
published after it commits.

`sse_notify` appends the events to the storage tables inside the caller's transaction (`SseBatch`:
the users' counters locked in name order, one bulk insert) and publishes them to Redis once it
committed. A notification therefore exists exactly when its effect does: rolled back with a failed
chunk, never lost by a kill -9 between the commit and a push (a client that reconnects with
`Last-Event-ID` gets it from the storage; only the live fan-out of that moment can be lost). For a
chunk of events this is three statements in all, where `sse_push` costs a transaction of about six
per event (measured: ~4 ms of the consumer's CPU per event, most of its cost).

Lock order (`common.db`): the counters are rows of the events' users; call it after the orders' and
carts' rows and before the hot shared rows (the sales statistics).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, transaction

from common.sse.push import SseBatch, sse_publish
from common.sse.storage import sse_trim


@dataclass(frozen=True)
class Notification:
    user_id: int
    event_type: str
    data: dict[str, Any]


def sse_notify(notifications: Iterable[Notification]) -> None:
    """Store these SSE events in the current transaction; publish them after it commits."""
    notifications = list(notifications)
    if not notifications:
        return
    batch = SseBatch(n.user_id for n in notifications)
    for n in notifications:
        batch.add(n.user_id, n.event_type, n.data)
    stored = batch.store()
    transaction.on_commit(lambda: sse_publish(stored), robust=True)
    transaction.on_commit(_trim, robust=True)


def _trim() -> None:
    try:
        sse_trim()  # at most once a minute per process
    except DatabaseError:
        pass  # the next one trims
