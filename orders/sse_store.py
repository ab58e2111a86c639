"""SSE events written in the caller's transaction, in bulk, then published after commit.

`common.sse.sse_push` stores one event per call in its own transaction (about six queries) after
the business commit. The checkout consumer answers hundreds of requests per transaction and must
answer each exactly once even if it is killed between its commit and the push, so it appends the
events to django-eventstream's `DjangoModelStorage` tables *inside* its transaction (one bulk
insert; the per-channel counters locked in name order) and only publishes them to Redis after
commit. A crash after the commit loses only the live fan-out: the stored event is still replayed to
any client that (re)connects with `Last-Event-ID`, and the result is readable by polling.

This mirrors `django_eventstream.models.Event.save` (pinned django-eventstream 5.3.x): per channel,
`EventCounter.value` is the last event id, a placeholder event with eid 0 exists once the channel has
events, and `Event.data` holds the JSON-encoded *string* of the JSON payload.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone
from django_eventstream.models import Event, EventCounter

from common.bulk_sql import insert_rows
from common.sse import StoredEvent, sse_publish, user_channel

log = logging.getLogger(__name__)


class SseBatch:
    """Events for many user channels, stored in the caller's transaction.

        batch = SseBatch(user_ids)      # locks (creating if needed) the channels' counters
        batch.add(user_id, "checkout-completed", {...})
        stored = batch.store()          # one bulk insert; publish `stored` after commit

    Lock the counters early (before any hot row): a concurrent `send_event` for one of these users
    then waits for our commit instead of deadlocking with it.
    """

    def __init__(self, user_ids: Iterable[int]):
        if not connection.in_atomic_block:
            raise RuntimeError("SseBatch must be used inside the caller's transaction")
        names = sorted({user_channel(user_id) for user_id in user_ids})
        self.counters = _lock_counters(names)
        missing = [name for name in names if name not in self.counters]
        if missing:
            # INSERT IGNORE only for new channels: on an existing row it would take a shared lock and a
            # later FOR UPDATE would have to upgrade it (a classic deadlock with `send_event`).
            EventCounter.objects.bulk_create([EventCounter(name=name) for name in missing], ignore_conflicts=True)
            self.counters.update(_lock_counters(missing))
        self.rows: list[Event] = []
        self.stored: list[StoredEvent] = []

    def add(self, user_id: int, event_type: str, payload: dict[str, Any]) -> None:
        counter = self.counters[user_channel(user_id)]
        if counter.value == 0:  # django-eventstream's placeholder, so that replay from id 0 works
            self.rows.append(Event(channel=counter.name, type="", data="", eid=0))
        counter.value += 1
        data = json.dumps(payload, cls=DjangoJSONEncoder)
        self.rows.append(Event(channel=counter.name, type=event_type, data=json.dumps(data), eid=counter.value))
        self.stored.append(StoredEvent(counter.name, event_type, data, counter.value))

    def store(self) -> list[StoredEvent]:
        if self.rows:
            insert_rows(self.rows)
            now = timezone.now()
            for counter in self.counters.values():
                counter.updated = now
            insert_rows(list(self.counters.values()), update_fields=["value", "updated"])  # upsert, locked rows
        return self.stored


def _lock_counters(names: list[str]) -> dict[str, EventCounter]:
    rows = EventCounter.objects.select_for_update().filter(name__in=names).order_by("name")
    return {counter.name: counter for counter in rows}


def sse_push_stored(user_id: int, event_type: str, payload: dict[str, Any]) -> None:
    """`common.sse.sse_push` in fewer round trips (the enqueue hot path): store in one short
    transaction, publish after it. Call outside any transaction; a failure is logged, not raised."""
    try:
        with transaction.atomic():
            batch = SseBatch([user_id])
            batch.add(user_id, event_type, payload)
            stored = batch.store()
    except Exception:  # noqa: BLE001 - a notification; the result is readable by polling
        log.exception("SSE push failed for user %s (%s)", user_id, event_type)
        return
    sse_publish(stored)
