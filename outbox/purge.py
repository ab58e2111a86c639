"""The purges (Celery beat: `outbox.tasks.outbox_purge`): applied outbox rows, then old inbox rows,
in bounded batches, never a row something could still deliver or apply again."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from common.bulk_sql import placeholders
from outbox.apply import publication_steps
from outbox.models import DeadLetter, OutboxEvent, ProcessedEvent
from outbox.selectors import fallback_watermark, recorded_sql


def outbox_purge_run(*, now: dt.datetime | None = None, batch_size: int = 1000) -> int:
    """Delete outbox rows older than OUTBOX_PURGE_AFTER_DAYS that the inbox recorded (with every
    publication of their type). Unapplied and dead-lettered rows stay. Returns the number deleted."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=settings.OUTBOX_PURGE_AFTER_DAYS)
    table = OutboxEvent._meta.db_table
    done = [recorded_sql(table)]
    params: list[Any] = [connection.ops.adapt_datetimefield_value(cutoff), ProcessedEvent.OUTBOX_CONSUMER]
    for step, types in publication_steps().items():
        done.append(f"({table}.type NOT IN ({placeholders(types)}) OR {recorded_sql(table)})")
        params += [*types, step]
    sql = (
        f"DELETE FROM {table} WHERE {table}.created_at < %s AND {' AND '.join(done)}"
        f" ORDER BY {table}.created_at LIMIT %s"
    )
    deleted = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, batch_size])
            count = cursor.rowcount
        deleted += count
        if count < batch_size:
            return deleted


def inbox_purge_run(*, now: dt.datetime | None = None, batch_size: int = 5000) -> int:
    """Delete inbox rows older than OUTBOX_INBOX_RETENTION_DAYS, oldest first, at most `batch_size`
    per DELETE (each a short statement of its own on the processed_at index, so the consumers'
    inserts never wait long). Returns the number deleted.

    A row goes only when nothing can deliver its event again, or the event would be applied twice:
    - Kafka: the retention must be longer than the broker's retention of the events (7 days by default);
    - the outbox purge deletes an outbox row only once the inbox records it: rows younger than
      OUTBOX_PURGE_AFTER_DAYS stay, so the outbox row always goes first;
    - the fallback never looks before its watermark minus the rewind (processed_at >= created_at),
      so rows after that stay: an event failing for days holds the watermark, and this purge, back;
      before the fallback's first run (no watermark) it would look at everything, so nothing goes;
    - a dead letter can be replayed at any time: the inbox rows of its event stay while it exists.
    """
    now = now or timezone.now()
    position = fallback_watermark()
    if position is None:
        return 0
    cutoff = min(
        now - dt.timedelta(days=settings.OUTBOX_INBOX_RETENTION_DAYS),
        now - dt.timedelta(days=settings.OUTBOX_PURGE_AFTER_DAYS),
        position - dt.timedelta(seconds=settings.OUTBOX_FALLBACK_REWIND_SECONDS),
    )
    inbox, dead = ProcessedEvent._meta.db_table, DeadLetter._meta.db_table
    sql = (
        f"DELETE FROM {inbox} WHERE {inbox}.processed_at < %s"
        f" AND NOT EXISTS (SELECT 1 FROM {dead} d WHERE d.event_id = {inbox}.event_id)"
        f" ORDER BY {inbox}.processed_at LIMIT %s"
    )
    params = [connection.ops.adapt_datetimefield_value(cutoff), batch_size]
    deleted = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            count = cursor.rowcount
        deleted += count
        if count < batch_size:
            return deleted
