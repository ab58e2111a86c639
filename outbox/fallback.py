"""The fallback (Celery beat: `outbox.tasks.outbox_fallback`): applies the outbox events the consumer
has not applied after a while, straight from the table, through the same handlers and inbox."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from common.mysql import named_lock
from outbox.apply import event_apply, publication_steps
from outbox.events import event_from_row
from outbox.metrics import FALLBACK_APPLIED
from outbox.models import FallbackWatermark, OutboxEvent, ProcessedEvent
from outbox.selectors import fallback_watermark, unapplied_events

log = logging.getLogger(__name__)


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
    cutoff = now - dt.timedelta(seconds=settings.OUTBOX_FALLBACK_AFTER_SECONDS)
    rewind = dt.timedelta(seconds=settings.OUTBOX_FALLBACK_REWIND_SECONDS)
    batch = settings.OUTBOX_FALLBACK_BATCH
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
        log.warning("outbox fallback: applied event %s (%s, created %s)", row.id, row.type, row.created_at)
    else:
        report.duplicates += 1
    return True
