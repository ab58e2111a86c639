"""Applying outbox events once, whoever delivers them (Kafka consumer, fallback, dead-letter replay).

`event_apply` (one event) and `events_apply` (several in one transaction, the consumer's fast path):
1. one transaction (retried whole on lock conflicts): the events recorded in the inbox under
   "outbox" (`inbox_claim_many`); the new ones applied type by type, each handler receiving all of
   its type (`Handler.apply_all`), their SSE notifications stored with them; commit; then their
   `on_commit` effects (SSE publication, caches).
2. the handler's publications (the data-platform message), each at least once: skipped if the inbox
   records it under the publication's name; otherwise produced, acknowledged by the broker, and then
   recorded. A crash between the acknowledgement and the record, or the fallback racing a very late
   consumer, can send it twice: the message carries `eventId` for the receiver to drop duplicates.
   It is never lost: until it is recorded, a consumer retry, the fallback or a replay sends it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence, Set

from django.db import connection

from common.db import run_in_transaction
from common.kafka import produce_and_wait
from outbox.events import Event
from outbox.handlers import Handler, Publication, load_handlers
from outbox.metrics import EVENTS
from outbox.models import ProcessedEvent
from outbox.services import inbox_claim_many

log = logging.getLogger(__name__)


def event_apply(event: Event, *, source: str) -> bool:
    """Apply `event` at most once (see module docstring). True if this call applied it."""
    return events_apply([event], source=source)[0]


def events_apply(events: Sequence[Event], *, source: str) -> list[bool]:
    """Apply several events in ONE transaction (all or none; the consumer's fast path, which saves a
    commit per event and lets a handler write a whole chunk with a few statements), then send their
    publications together. Raises on any failure: the caller then applies them one by one to find
    the culprit. Returns, per event, whether it was applied."""
    registry = load_handlers()
    applied = run_in_transaction(lambda: _apply_new(events, registry))
    for was_applied in applied:
        EVENTS.labels(source, "applied" if was_applied else "duplicate").inc()
    publications_send(
        [(e, p) for e in events if (h := registry.get(e.type)) for p in h.publications],
        new={e.id for e, was_applied in zip(events, applied, strict=True) if was_applied},
    )
    return applied


def _apply_new(events: Sequence[Event], registry: dict[str, Handler]) -> list[bool]:
    claims = inbox_claim_many(consumer=ProcessedEvent.OUTBOX_CONSUMER, event_ids=[e.id for e in events])
    by_type: dict[str, list[Event]] = {}
    for event, new in zip(events, claims, strict=True):
        if new:
            by_type.setdefault(event.type, []).append(event)
    for event_type, new_events in by_type.items():
        handler = registry.get(event_type)
        if handler is None:  # recorded as seen, so the fallback does not retry it every minute
            log.warning(
                "outbox: no handler for event type %r (events %s); recorded and skipped",
                event_type,
                ", ".join(e.id for e in new_events),
            )
            continue
        handler.apply_all(new_events)
    return claims


def publications_send(items: Sequence[tuple[Event, Publication]], *, new: Set[str] = frozenset()) -> int:
    """Send the publications the inbox does not record as sent: produce them all, wait for the
    broker's acknowledgements, then record them (one statement). Returns how many were sent now.
    `new`: events the caller applied just now, whose publications cannot have been recorded yet (a
    publication is recorded only after its event), so the inbox is not asked about them."""
    if not items:
        return 0
    asked = [(e, p) for e, p in items if e.id not in new]
    sent = set()
    if asked:
        sent = set(
            ProcessedEvent.objects.filter(
                consumer__in={p.name for _, p in asked}, event_id__in={e.id for e, _ in asked}
            ).values_list("consumer", "event_id")
        )
    todo = list(
        {(p.name, e.id): (e, p) for e, p in items if (p.name, e.id) not in sent}.values()  # an event may come twice
    )
    if not todo:
        return 0
    produce_and_wait(*(publication.build(event) for event, publication in todo), timeout=PUBLISH_TIMEOUT_SECONDS)
    with connection.cursor() as cursor:  # autocommit: one statement, no transaction around it
        cursor.execute(
            "INSERT IGNORE INTO outbox_processed_event (consumer, event_id, processed_at) VALUES "
            + ", ".join(["(%s, %s, UTC_TIMESTAMP(6))"] * len(todo)),
            [value for event, publication in todo for value in (publication.name, event.id)],
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
