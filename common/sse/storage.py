"""django-eventstream's storage and channel manager (settings EVENTSTREAM_STORAGE_CLASS and
EVENTSTREAM_CHANNELMANAGER_CLASS), and the trim of old stored events."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection
from django.utils import timezone
from django_eventstream.channelmanager import DefaultChannelManager
from django_eventstream.event import Event as StreamEvent
from django_eventstream.models import Event as EventRow
from django_eventstream.storage import EVENT_TIMEOUT, DjangoModelStorage

log = logging.getLogger(__name__)


def user_channel(user_id: int) -> str:
    return f"user-{user_id}"


class UserChannelManager(DefaultChannelManager):
    """A user may read only `user-<own id>`."""

    def can_read_channel(self, user, channel: str) -> bool:
        return bool(user is not None and user.is_authenticated and channel == user_channel(user.pk))


class StreamStorage(DjangoModelStorage):
    """django-eventstream's database storage, minus one MariaDB connection per open stream, and
    without trimming inside every push.

    `append_event` stores the event (one transaction: counter locked, row inserted), then trims old
    events at most once a minute per process (`sse_trim`); the library's version trims on every call.
    That trim runs after the store committed: were its failure the push's, the push would look failed
    although the event was stored, and `sse_push(retry_seconds=...)` would store it a second time. So a
    failed trim is logged and the push counts as done.

    Under ASGI, Django runs each request's synchronous code in a thread of its own, and the stream
    reads its stored events (on open, and after an overflow) through `sync_to_async` in that same
    thread: a connection opened there stays open for as long as the stream does. Measured: 200 open
    streams held 200 connections, and 500 exhausted MariaDB's `max_connections` for every other
    process. A read here closes its connection afterwards (one connect per stream open, ~1 ms on
    loopback); live events arrive through Redis and touch no database at all. Writes (`append_event`,
    from the web, consumers and workers) are unchanged: those processes keep their pooled connection.
    """

    def append_event(self, channel, event_type, data):
        db_event = EventRow(channel=channel, type=event_type, data=json.dumps(data, cls=DjangoJSONEncoder))
        db_event.save()  # django-eventstream's Event.save: the channel counter, locked, gives the id
        try:
            sse_trim()
        except DatabaseError as exc:
            log.warning("SSE: trimming old events failed: %s", exc)
        return StreamEvent(db_event.channel, db_event.type, data, id=db_event.eid)

    def get_events(self, *args, **kwargs):
        try:
            return super().get_events(*args, **kwargs)
        finally:
            _close_unless_in_transaction()

    def get_current_id(self, *args, **kwargs):
        try:
            return super().get_current_id(*args, **kwargs)
        finally:
            _close_unless_in_transaction()


def _close_unless_in_transaction() -> None:
    if not connection.in_atomic_block:
        connection.close()


_last_trim = 0.0


def sse_trim(*, every_seconds: float = 60, batch: int = 5000) -> int:
    """Delete stored events older than django-eventstream's retention (EVENT_TIMEOUT minutes), at most
    one bounded batch every `every_seconds` per process: after `StreamStorage.append_event`, and by
    the checkout consumer after its bulk stores (which do not go through the storage)."""
    global _last_trim
    if time.monotonic() - _last_trim < every_seconds:
        return 0
    _last_trim = time.monotonic()
    cutoff = timezone.now() - timedelta(minutes=EVENT_TIMEOUT)
    ids = list(EventRow.objects.filter(created__lt=cutoff).order_by("id").values_list("id", flat=True)[:batch])
    if ids:
        EventRow.objects.filter(id__in=ids).delete()
    return len(ids)
