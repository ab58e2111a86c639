"""Write outbox events in the caller's transaction; let consumers skip what they applied."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from common.bulk_sql import insert_instance
from outbox.models import OutboxEvent


def outbox_enqueue(*, aggregate_type: str, aggregate_id: Any, event_type: str, payload: dict[str, Any]) -> OutboxEvent:
    """Record an event inside the current transaction (it leaves only if the transaction commits).

    Every checkout, payment and coupon issue writes one, so the row goes through
    `common.bulk_sql.insert_instance` (one INSERT) rather than `OutboxEvent.objects.create`, whose
    save machinery cost about 0.1 ms of CPU more per row (docs/REPORT.md).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("outbox_enqueue must run inside the business transaction")
    return insert_instance(
        OutboxEvent(
            id=uuid.uuid4(),
            aggregatetype=aggregate_type,
            aggregateid=str(aggregate_id),
            type=event_type,
            payload=json.loads(json.dumps(payload, cls=DjangoJSONEncoder)),  # what a reader of the row gets back
        )
    )


def inbox_claim(*, consumer: str, event_id: str) -> bool:
    """True if this consumer has not applied `event_id` yet (and records it), False for a duplicate.

    Must run inside the transaction that applies the effect: if that transaction rolls back, the
    record goes with it. A concurrent duplicate blocks on the unique key until the first commits,
    then sees the row and returns False.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("inbox_claim must run inside the transaction that applies the event")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT IGNORE INTO outbox_processed_event (consumer, event_id, processed_at)"
            " VALUES (%s, %s, UTC_TIMESTAMP(6))",  # Django stores UTC; NOW() follows the server's zone
            [consumer, event_id],
        )
        return cursor.rowcount == 1


class InboxRace(Exception):
    """Another transaction recorded some of these events meanwhile: apply them one at a time."""


def inbox_claim_many(*, consumer: str, event_ids: list[str]) -> list[bool]:
    """`inbox_claim` for several events in one statement: per id, True if it is new (and now
    recorded), False if it was recorded before or appears earlier in the list.

    One multi-row INSERT IGNORE: all new (the consumer's usual case) or all recorded before (a
    redelivered chunk) is told apart by its row count; anything in between raises `InboxRace`,
    and the caller applies the events one by one (`inbox_claim` tells each apart).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("inbox_claim_many must run inside the transaction that applies the events")
    first = {event_id: None for event_id in event_ids}  # distinct, in order
    if len(first) == 1:
        new = inbox_claim(consumer=consumer, event_id=event_ids[0])
        return [new] + [False] * (len(event_ids) - 1)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT IGNORE INTO outbox_processed_event (consumer, event_id, processed_at) VALUES "
            + ", ".join(["(%s, %s, UTC_TIMESTAMP(6))"] * len(first)),
            [value for event_id in first for value in (consumer, event_id)],
        )
        recorded = cursor.rowcount
    if recorded == 0:
        return [False] * len(event_ids)
    if recorded != len(first):
        raise InboxRace(f"{len(first) - recorded} of {len(first)} events were recorded before")
    seen: set[str] = set()
    claims = []
    for event_id in event_ids:
        claims.append(event_id not in seen)
        seen.add(event_id)
    return claims
