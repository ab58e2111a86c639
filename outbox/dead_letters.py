"""Dead letters: messages the outbox consumer gave up on, copied to the dead-letter topic and stored
for an operator to replay (admin), and the rules for when a failure goes there."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Message
from django.db import InterfaceError, transaction
from django.db.models import F
from django.utils import timezone

from common.kafka import OutgoingMessage, ProduceFailed, produce_and_wait
from common.mysql import is_connection_lost
from outbox.apply import PUBLISH_TIMEOUT_SECONDS, event_apply
from outbox.events import Event, MalformedEvent, canonical_event_id, dead_letter_topic, event_from_parts
from outbox.metrics import DEAD_LETTERED
from outbox.models import DeadLetter

log = logging.getLogger(__name__)


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
    produce_and_wait(
        OutgoingMessage(dead_letter_topic(), msg.key() or b"", msg.value() or b"", dlq_headers),
        timeout=PUBLISH_TIMEOUT_SECONDS,
    )
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


def is_transient(exc: BaseException) -> bool:
    """The database or the broker is unreachable: retrying later is the only thing to do, and
    dead-lettering would not help (nor could it be stored). Such failures count no attempt."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, InterfaceError | ProduceFailed):
            return True
        if is_connection_lost(seen):
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
