"""Reads over the outbox: which events some consumer step has not recorded yet, and the state the
metrics, /readyz and the admin show (relay backlog, oldest unapplied event, dead letters).

The inbox keys events by their canonical id text (`8-4-4-4-12` hex with dashes). The outbox id
column is a native UUID on MariaDB and char(32) hex on MySQL, so the anti-join converts it in SQL,
into the inbox column's own collation: a conversion the unique key (consumer, event_id) can still
serve as an eq_ref lookup (checked with EXPLAIN; without the COLLATE the lookup covers `consumer`
only and MariaDB materialises every inbox row of the consumer).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.db import connection
from django.db.models import Min
from django.utils import timezone

from common.bulk_sql import placeholders
from outbox.models import DeadLetter, FallbackWatermark, OutboxEvent, ProcessedEvent, RelayCheckpoint

INBOX = ProcessedEvent._meta.db_table
DEAD = DeadLetter._meta.db_table
OUTBOX = OutboxEvent._meta.db_table

_SAFE = re.compile(r"^[A-Za-z0-9_]+$")


@cache
def _column_collation(database: str, table: str, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COLLATION_NAME FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND COLUMN_NAME = %s",
            [database, table, column],
        )
        row = cursor.fetchone()
    collation = row[0] if row and row[0] else "utf8mb4_general_ci"
    if not _SAFE.match(collation):
        raise ValueError(f"unexpected collation {collation!r}")
    return collation


def event_key_sql(alias: str, *, table: str = INBOX) -> str:
    """SQL for outbox row `alias`'s id as the inbox's text key, collated like `table`.event_id."""
    collation = _column_collation(connection.settings_dict["NAME"], table, "event_id")
    if connection.features.has_native_uuid_field:  # MariaDB >= 10.7: UUID type, text has dashes
        text = f"CAST({alias}.id AS CHAR CHARACTER SET utf8mb4)"
    else:  # MySQL: char(32) lower-case hex
        parts = ", ".join(f"SUBSTRING({alias}.id, {start}, {length})" for start, length in _UUID_GROUPS)
        text = f"CONVERT(CONCAT_WS('-', {parts}) USING utf8mb4)"
    return f"{text} COLLATE {collation}"


_UUID_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


def recorded_sql(alias: str) -> str:
    """SQL: the inbox records outbox row `alias` for the consumer given as the next %s parameter."""
    return f"EXISTS (SELECT 1 FROM {INBOX} p WHERE p.consumer = %s AND p.event_id = {event_key_sql(alias)})"


def unapplied_events(
    *,
    consumer: str,
    steps: dict[str, Iterable[str]],
    created_from: dt.datetime | None,
    created_before: dt.datetime,
    after: tuple[dt.datetime, object] | None,
    limit: int,
) -> list[OutboxEvent]:
    """Outbox rows in [created_from, created_before), after the keyset `after` (created_at, id),
    oldest first, that `consumer` has not recorded, or whose event type has a follow-up step
    (`steps`: step name -> event types) not recorded yet. Rows dead-lettered by `consumer` and not
    replayed are left to the operator."""
    where, params = ["e.created_at < %s"], [_db_datetime(created_before)]
    if created_from is not None:
        where.append("e.created_at >= %s")
        params.append(_db_datetime(created_from))
    if after is not None:
        after_id = OutboxEvent._meta.pk.get_db_prep_value(after[1], connection)
        where.append("(e.created_at > %s OR (e.created_at = %s AND e.id > %s))")
        params += [_db_datetime(after[0]), _db_datetime(after[0]), after_id]
    missing = [f"NOT {recorded_sql('e')}"]
    params.append(consumer)
    for step, types in steps.items():
        types = list(types)
        if types:
            missing.append(f"(e.type IN ({placeholders(types)}) AND NOT {recorded_sql('e')})")
            params += [*types, step]
    where.append("(" + " OR ".join(missing) + ")")
    where.append(
        f"NOT EXISTS (SELECT 1 FROM {DEAD} d WHERE d.consumer = %s"
        f" AND d.event_id = {event_key_sql('e', table=DEAD)} AND d.replayed_at IS NULL)"
    )
    params.append(consumer)
    sql = f"SELECT e.* FROM {OUTBOX} e WHERE {' AND '.join(where)} ORDER BY e.created_at, e.id LIMIT %s"
    return list(OutboxEvent.objects.raw(sql, [*params, limit]))


def oldest_unapplied_created_at(*, consumer: str, created_from: dt.datetime | None) -> dt.datetime | None:
    """created_at of the oldest outbox row `consumer` has not recorded (dead letters excluded)."""
    rows = unapplied_events(
        consumer=consumer, steps={}, created_from=created_from, created_before=_far_future(), after=None, limit=1
    )
    return rows[0].created_at if rows else None


def _db_datetime(value: dt.datetime):
    """Raw SQL gets what the ORM would send (naive UTC on MySQL/MariaDB)."""
    return connection.ops.adapt_datetimefield_value(value)


def _far_future() -> dt.datetime:
    return dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


def fallback_watermark() -> dt.datetime | None:
    """Where the fallback's last run left its watermark; None before its first run."""
    mark = FallbackWatermark.objects.filter(name=FallbackWatermark.FALLBACK).first()
    return mark.position if mark else None


@dataclass(frozen=True)
class OutboxState:
    relay: float | None  # seconds the oldest unrelayed row has waited; None: no relay ever ran here
    unapplied: float  # seconds the oldest event the outbox consumer has not applied has waited
    dead_letters: int  # not replayed yet


def outbox_state(now: dt.datetime | None = None) -> OutboxState:
    now = now or timezone.now()
    oldest = oldest_unapplied(now)
    return OutboxState(
        relay=relay_pending_seconds(now),
        unapplied=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        dead_letters=DeadLetter.objects.filter(replayed_at__isnull=True).count(),
    )


def relay_pending_seconds(now: dt.datetime | None = None) -> float | None:
    """How long the oldest outbox row newer than the relay's last published one has waited; None
    when no relay ever ran here (Debezium publishes instead)."""
    checkpoint = RelayCheckpoint.objects.filter(name=RelayCheckpoint.RELAY).first()
    if checkpoint is None:
        return None
    rows = OutboxEvent.objects.all()
    if checkpoint.last_event_created_at is not None:
        rows = rows.filter(created_at__gt=checkpoint.last_event_created_at)
    oldest = rows.aggregate(m=Min("created_at"))["m"]
    now = now or timezone.now()
    return max(0.0, (now - oldest).total_seconds()) if oldest else 0.0


def oldest_unapplied(now: dt.datetime) -> dt.datetime | None:
    """Looks from the fallback's watermark (minus its rewind) on: everything before it was applied.
    Before the fallback's first run, over the last day only (a scrape must stay cheap)."""
    position = fallback_watermark()
    if position is None:
        since = now - dt.timedelta(days=1)
    else:
        since = position - dt.timedelta(seconds=settings.OUTBOX_FALLBACK_REWIND_SECONDS)
    return oldest_unapplied_created_at(consumer=ProcessedEvent.OUTBOX_CONSUMER, created_from=since)
