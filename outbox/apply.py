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

import logging
from collections.abc import Sequence

from common.db import run_in_transaction
from common.kafka import produce_and_wait
from outbox.events import Event
from outbox.handlers import Handler, Publication, load_handlers
from outbox.metrics import EVENTS
from outbox.models import ProcessedEvent
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
    produce_and_wait(*(publication.build(event) for event, publication in todo), timeout=PUBLISH_TIMEOUT_SECONDS)
    ProcessedEvent.objects.bulk_create(
        [ProcessedEvent(consumer=publication.name, event_id=event.id) for event, publication in todo],
        ignore_conflicts=True,
    )
    return len(todo)


# How long applying an event waits for the broker to acknowledge its publications (or a dead letter).
PUBLISH_TIMEOUT_SECONDS = 5.0


def publication_steps() -> dict[str, list[str]]:
    """Publication name -> event types that have it (what the fallback must also check)."""
    steps: dict[str, list[str]] = {}
    for handler in load_handlers().values():
        for publication in handler.publications:
            steps.setdefault(publication.name, []).append(handler.event_type)
    return steps
