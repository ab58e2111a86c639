"""Applying outbox events once, whoever delivers them (Kafka consumer, fallback, dead-letter replay).

`event_apply` (one event) and `events_apply` (several in one transaction, the consumer's fast path):
1. one transaction (retried whole on lock conflicts): `inbox_claim("outbox", event id)`; if the
   event is new, the handler's database effects; commit; then its `on_commit` effects (SSE...).
2. the handler's publications (the data-platform message), each at least once: skipped if the inbox
   records it under the publication's name; otherwise produced, acknowledged by the broker, and then
   recorded. A crash between the acknowledgement and the record, or the fallback racing a very late
   consumer, can send it twice: the message carries `eventId` for the receiver to drop duplicates.
   It is never lost: until it is recorded, a consumer retry, the fallback or a replay sends it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from common.db import run_in_transaction
from common.kafka import ProduceFailed, get_producer, reset_producer
from outbox.conf import setting_float, setting_int
from outbox.events import (
    Event,
    MalformedEvent,
    OutboxMessage,
    canonical_event_id,
    dead_letter_topic,
    event_from_parts,
    event_from_row,
)
from outbox.handlers import Handler, Publication, load_handlers
from outbox.metrics import DEAD_LETTERED, EVENTS, FALLBACK_APPLIED
from outbox.models import DeadLetter, FallbackWatermark, OutboxEvent, ProcessedEvent
from outbox.selectors import fallback_watermark, recorded_sql, unapplied_events
from outbox.services import inbox_claim

log = logging.getLogger(__name__)


def event_apply(event: Event, *, source: str) -> bool:
    """Apply `event` at most once (see module docstring). True if this call applied it."""
    return events_apply([event], source=source)[0]


def events_apply(events: Sequence[Event], *, source: str) -> list[bool]:
    """Apply several events in ONE transaction (all or none; the consumer's fast path, which saves a
    commit per event), then send their publications together. Raises on any failure: the caller
    then applies them one by one to find the culprit. Returns, per event, whether it was applied."""
    registry = load_handlers()
    handlers = [registry.get(event.type) for event in events]
    applied = run_in_transaction(lambda: [_apply_once(e, h) for e, h in zip(events, handlers, strict=True)])
    for was_applied in applied:
        EVENTS.labels(source, "applied" if was_applied else "duplicate").inc()
    publications_send([(e, p) for e, h in zip(events, handlers, strict=True) if h for p in h.publications])
    return applied


def _apply_once(event: Event, handler: Handler | None) -> bool:
    if not inbox_claim(consumer=ProcessedEvent.OUTBOX_CONSUMER, event_id=event.id):
        return False
    if handler is None:  # recorded as seen, so the fallback does not retry it every minute
        log.warning("outbox: no handler for event type %r (event %s); recorded and skipped", event.type, event.id)
        return True
    handler.apply(event)
    return True


def publications_send(items: Sequence[tuple[Event, Publication]]) -> int:
    """Send the publications the inbox does not record as sent: produce them all, wait for the
    broker's acknowledgements, then record them. Returns how many were sent now."""
    if not items:
        return 0
    sent = set(
        ProcessedEvent.objects.filter(
            consumer__in={p.name for _, p in items}, event_id__in={e.id for e, _ in items}
        ).values_list("consumer", "event_id")
    )
    todo = [(event, publication) for event, publication in items if (publication.name, event.id) not in sent]
    if not todo:
        return 0
    produce_all([publication.build(event) for event, publication in todo])
    ProcessedEvent.objects.bulk_create(
        [ProcessedEvent(consumer=publication.name, event_id=event.id) for event, publication in todo],
        ignore_conflicts=True,
    )
    return len(todo)


def produce_all(messages: Sequence[OutboxMessage], *, timeout: float = 5.0) -> None:
    """Produce `messages` on the shared producer and wait until the broker acknowledged every one
    (one wait for all, not one per message). Raises ProduceFailed otherwise."""
    if not messages:
        return
    producer = get_producer()
    errors: list[KafkaError] = []
    remaining = [len(messages)]
    lock, done = threading.Lock(), threading.Event()

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:  # on whichever thread polls
        with lock:
            remaining[0] -= 1
            if err is not None:
                errors.append(err)
            if remaining[0] == 0:
                done.set()

    try:
        for message in messages:
            producer.produce(
                message.topic, key=message.key, value=message.value, headers=message.headers, on_delivery=on_delivery
            )
    except (BufferError, KafkaException) as exc:
        producer.flush(timeout)
        raise ProduceFailed(str(exc)) from exc
    deadline = time.monotonic() + timeout
    while not done.is_set() and time.monotonic() < deadline:
        try:
            producer.poll(0.01)
        except (KafkaException, SystemError) as exc:  # fatal idempotent-producer state
            reset_producer()
            raise ProduceFailed(str(exc)) from exc
    if not done.is_set():
        raise ProduceFailed(f"{remaining[0]} of {len(messages)} messages not acknowledged in time")
    if errors:
        # A fresh producer for the retry: tansu answers PRODUCER_FENCED (seen here under load, not
        # flagged fatal) to an idempotent producer, after which the old one fails every message.
        reset_producer()
        raise ProduceFailed(str(errors[0]))


def publication_steps() -> dict[str, list[str]]:
    """Publication name -> event types that have it (what the fallback must also check)."""
    steps: dict[str, list[str]] = {}
    for handler in load_handlers().values():
        for publication in handler.publications:
            steps.setdefault(publication.name, []).append(handler.event_type)
    return steps


# --- dead letters ---------------------------------------------------------------------------


def dead_letter_record(
    *, consumer: str, msg: Message, error: BaseException | str, attempts: int, event: Event | None = None
) -> DeadLetter:
    """Copy a message the consumer gave up on to the dead-letter topic, then store it (one row per
    consumer and event). Raises if either fails: the caller must then retry, not move on. (A retry
    after the copy but before the row may copy it twice; the row is an upsert.)"""
    headers = _headers_dict(msg)
    event_id = event.id if event else _fallback_event_id(msg, headers)
    error_text = _error_text(error)
    dlq_headers = [*(msg.headers() or [])]
    dlq_headers += [
        ("dlqConsumer", consumer.encode()),
        ("dlqError", error_text[:1000].encode()),
        ("dlqTopic", (msg.topic() or "").encode()),
        ("dlqPartition", str(msg.partition()).encode()),
        ("dlqOffset", str(msg.offset()).encode()),
        ("dlqAttempts", str(attempts).encode()),
    ]
    produce_all([OutboxMessage(dead_letter_topic(), msg.key() or b"", msg.value() or b"", dlq_headers)])
    with transaction.atomic():
        dead, _ = DeadLetter.objects.update_or_create(
            consumer=consumer,
            event_id=event_id,
            defaults={
                "event_type": (event.type if event else headers.get("eventType", ""))[:64],
                "topic": msg.topic() or "",
                "partition": msg.partition(),
                "offset": msg.offset(),
                "key": _text(msg.key()),
                "headers": headers,
                "payload": _text(msg.value()),
                "error": error_text,
                "attempts": attempts,
                "replayed_at": None,
            },
        )
    DEAD_LETTERED.labels(consumer).inc()
    log.error("%s: dead-lettered %s after %d attempt(s): %s", consumer, event_id, attempts, error_text[:300])
    return dead


def dead_letter_replay(*, dead_letter_id: int) -> bool:
    """Apply a dead letter again through the same inbox (a no-op if it was applied meanwhile).
    Marks it replayed; on failure records the error and re-raises. True if this replay applied it."""
    dead = DeadLetter.objects.get(pk=dead_letter_id)
    try:
        event = event_from_parts(headers=dead.headers, key=dead.key, value=dead.payload, topic_name=dead.topic)
        applied = event_apply(event, source="replay")
    except Exception as exc:
        DeadLetter.objects.filter(pk=dead.pk).update(attempts=F("attempts") + 1, error=_error_text(exc))
        raise
    DeadLetter.objects.filter(pk=dead.pk).update(replayed_at=timezone.now())
    return applied


def is_permanent(exc: BaseException) -> bool:
    """Errors no retry can fix: dead-letter at once."""
    return isinstance(exc, MalformedEvent)


# Connection-level errors: the database is down or restarting (a lock timeout or deadlock is not one).
CONNECTION_ERRORS = {1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031}


def is_transient(exc: BaseException) -> bool:
    """The database or the broker is unreachable: retrying later is the only thing to do, and
    dead-lettering would not help (nor could it be stored). Such failures count no attempt."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, InterfaceError | ProduceFailed):
            return True
        if isinstance(seen, OperationalError) and seen.args and seen.args[0] in CONNECTION_ERRORS:
            return True
        seen = seen.__cause__
    return False


def _headers_dict(msg: Message) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    for name, value in msg.headers() or []:
        headers.setdefault(name, _text(value))
    return headers


def _fallback_event_id(msg: Message, headers: dict[str, Any]) -> str:
    raw = headers.get("eventId") or headers.get("id")
    return canonical_event_id(raw) if raw else f"{msg.topic()}/{msg.partition()}/{msg.offset()}"


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _error_text(error: BaseException | str) -> str:
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"[:4000]
    return str(error)[:4000]


# --- the fallback and the purge (Celery beat: outbox.tasks) ----------------------------------


@dataclass
class FallbackReport:
    applied: int = 0
    duplicates: int = 0
    failed: int = 0
    watermark: dt.datetime | None = None
    busy: bool = False  # another fallback run held the lock


def outbox_fallback_run(*, now: dt.datetime | None = None) -> FallbackReport:
    """Apply, oldest first, every outbox event older than OUTBOX_FALLBACK_AFTER_SECONDS that the inbox
    has not recorded (nor each of its publications), through the same handlers and inbox.

    Walks all of them in keyset batches (created_at, id), starting OUTBOX_FALLBACK_REWIND_SECONDS
    before the watermark the previous run left (a transaction that committed late has an older
    created_at), and moves the watermark to the oldest event that failed, or to the cut-off.
    Dead-lettered events are the operator's (admin replay). One run at a time (a named DB lock).
    """
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=setting_float("OUTBOX_FALLBACK_AFTER_SECONDS"))
    rewind = dt.timedelta(seconds=setting_float("OUTBOX_FALLBACK_REWIND_SECONDS"))
    batch = setting_int("OUTBOX_FALLBACK_BATCH")
    report = FallbackReport()
    with named_lock(f"outbox_fallback:{connection.settings_dict['NAME']}") as acquired:
        if not acquired:
            report.busy = True
            return report
        position = fallback_watermark()
        steps = publication_steps()
        after: tuple[dt.datetime, Any] | None = None
        first_failure: dt.datetime | None = None
        while True:
            rows = unapplied_events(
                consumer=ProcessedEvent.OUTBOX_CONSUMER,
                steps=steps,
                created_from=position - rewind if position else None,
                created_before=cutoff,
                after=after,
                limit=batch,
            )
            for row in rows:
                if _fallback_apply(row, report) is False and first_failure is None:
                    first_failure = row.created_at
            if len(rows) < batch:
                break
            after = (rows[-1].created_at, rows[-1].id)
        report.watermark = min(first_failure, cutoff) if first_failure else cutoff
        FallbackWatermark.objects.update_or_create(
            name=FallbackWatermark.FALLBACK, defaults={"position": report.watermark}
        )
    if report.applied or report.failed:
        log.warning(
            "outbox fallback: applied %d event(s) the consumer had not, %d failed", report.applied, report.failed
        )
    return report


def _fallback_apply(row: OutboxEvent, report: FallbackReport) -> bool:
    try:
        applied = event_apply(event_from_row(row), source="fallback")
    except Exception:
        log.exception("outbox fallback: event %s (%s) failed; next run retries it", row.id, row.type)
        report.failed += 1
        FALLBACK_APPLIED.labels("failed").inc()
        return False
    if applied:
        report.applied += 1
        FALLBACK_APPLIED.labels("applied").inc()
    else:
        report.duplicates += 1
    return True


def outbox_purge_run(*, now: dt.datetime | None = None, batch_size: int = 1000) -> int:
    """Delete outbox rows older than OUTBOX_PURGE_AFTER_DAYS that the inbox recorded (with every
    publication of their type). Unapplied and dead-lettered rows stay. Returns the number deleted."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=setting_float("OUTBOX_PURGE_AFTER_DAYS"))
    table = OutboxEvent._meta.db_table
    done = [recorded_sql(table)]
    params: list[Any] = [connection.ops.adapt_datetimefield_value(cutoff), ProcessedEvent.OUTBOX_CONSUMER]
    for step, types in publication_steps().items():
        marks = ", ".join(["%s"] * len(types))
        done.append(f"({table}.type NOT IN ({marks}) OR {recorded_sql(table)})")
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
        now - dt.timedelta(days=setting_float("OUTBOX_INBOX_RETENTION_DAYS")),
        now - dt.timedelta(days=setting_float("OUTBOX_PURGE_AFTER_DAYS")),
        position - dt.timedelta(seconds=setting_float("OUTBOX_FALLBACK_REWIND_SECONDS")),
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


@contextmanager
def named_lock(name: str) -> Iterator[bool]:
    """A MariaDB/MySQL user lock on the default connection, not waiting: yields whether it was got."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, 0)", [name[:64]])
        acquired = cursor.fetchone()[0] == 1
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT RELEASE_LOCK(%s)", [name[:64]])
