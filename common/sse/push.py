"""Storing SSE events (django-eventstream's `DjangoModelStorage` tables) and publishing them to every
SSE process (Redis pub/sub).

One at a time, after the business commit: `sse_push` (`send_event`: one transaction of about six
queries per event).

In bulk, inside the caller's transaction: `SseBatch`. The checkout consumer answers hundreds of
requests per transaction and must answer each exactly once even if it is killed between its commit
and the push, so it appends the events to the storage tables *inside* its transaction (one bulk
insert; the per-channel counters locked in name order) and only publishes them to Redis after
commit (`sse_publish`). A crash after the commit loses only the live fan-out: the stored event is
still replayed to any client that (re)connects with `Last-Event-ID`, and the result is readable by
polling.

`SseBatch` mirrors `django_eventstream.models.Event.save` (pinned django-eventstream 5.3.x): per
channel, `EventCounter.value` is the last event id, a placeholder event with eid 0 exists once the
channel has events, and `Event.data` holds the JSON-encoded *string* of the JSON payload.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django_eventstream import send_event
from django_eventstream.models import Event, EventCounter

from common.bulk_sql import fetch_all, insert_rows, placeholders
from common.sse.storage import user_channel

log = logging.getLogger(__name__)


REDIS_PUBSUB_CHANNEL = "events_channel"  # django_eventstream.views.RedisListener subscribes to it


@dataclass(frozen=True)
class StoredEvent:
    channel: str
    event_type: str
    data: str  # the JSON text of the payload, as django-eventstream carries it
    eid: int


def sse_publish(stored: list[StoredEvent]) -> None:
    """Fan stored events out to every SSE process (Redis pub/sub). Call after commit; never raises."""
    if not stored:
        return
    from django_eventstream.eventstream import redis_client  # built from settings.EVENTSTREAM_REDIS

    if redis_client is None:
        return
    try:
        pipe = redis_client.pipeline(transaction=False)
        for event in stored:
            pipe.publish(
                REDIS_PUBSUB_CHANNEL,
                json.dumps(
                    {
                        "channel": event.channel,
                        "event_type": event.event_type,
                        "data": event.data,
                        "pub_id": str(event.eid),
                    }
                ),
            )
        pipe.execute()
    except Exception:  # noqa: BLE001 - live fan-out is best effort; the events are stored
        log.exception("SSE publish of %d stored events failed", len(stored))


def _stored_copy(channel: str, event_type: str, data: dict[str, Any]) -> StoredEvent | None:
    """The same notification stored in the last minutes, if any (its payload names its subject, e.g.
    an order id, so an equal payload is the same notification)."""
    text = json.dumps(data, cls=DjangoJSONEncoder)
    row = (
        Event.objects.filter(channel=channel, type=event_type, data=json.dumps(text))
        .filter(created__gte=timezone.now() - timedelta(minutes=10))
        .order_by("-eid")
        .first()
    )
    return StoredEvent(row.channel, row.type, text, row.eid) if row is not None else None


def sse_push(user_id: int, event_type: str, data: dict[str, Any], *, retry_seconds: float = 0.0) -> None:
    """Publish an event to the user's channel (stored for Last-Event-ID replay, fanned out by Redis).

    Call it after commit (`transaction.on_commit`), never inside a transaction. A failure is logged,
    not raised: the same result is always readable by polling. With `retry_seconds`, a database that
    is unreachable while the event is stored (a restart) is retried with back-off that long, so an
    effect committed just before an outage still gets its notification; the storing transaction
    either committed or did not; when the server went away with the acknowledgement of a commit, the
    retry finds the stored copy and only publishes it. Only for callers that may wait: background
    threads.
    """
    deadline = time.monotonic() + retry_seconds
    delay = 0.2
    retrying = False
    while True:
        try:
            if retrying and (stored := _stored_copy(user_channel(user_id), event_type, data)) is not None:
                sse_publish([stored])  # the failed attempt did commit: its answer was lost with the server
                return
            send_event(user_channel(user_id), event_type, data)
            return
        except DatabaseError:
            retrying = True
            if time.monotonic() + delay > deadline:
                log.exception("SSE push failed for user %s (%s)", user_id, event_type)
                return
            connection.close()  # a connection broken by a restart must not be reused
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        except Exception:  # noqa: BLE001 - SSE is a notification; the source of truth is the database
            log.exception("SSE push failed for user %s (%s)", user_id, event_type)
            return


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
    """Lock the channels' counters in name order. Written out: the ORM's compilation of this one
    query was over a quarter of the outbox consumer's CPU per coupon-issued event (py-spy, docs/REPORT.md)."""
    rows = fetch_all(
        f"SELECT `id`, `name`, `value` FROM `{EventCounter._meta.db_table}`"
        f" WHERE `name` IN ({placeholders(names)}) ORDER BY `name` FOR UPDATE",
        names,
    )
    return {name: EventCounter(id=pk, name=name, value=value) for pk, name, value in rows}


def sse_push_stored(user_id: int, event_type: str, payload: dict[str, Any]) -> None:
    """`sse_push` in fewer round trips (the enqueue hot path): store in one short
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
