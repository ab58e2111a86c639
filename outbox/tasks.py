from celery import shared_task

from outbox.fallback import outbox_fallback_run
from outbox.purge import inbox_purge_run, outbox_purge_run


@shared_task(name="outbox.tasks.outbox_fallback")
def outbox_fallback() -> dict:
    """Beat, every 60 s: apply the outbox events the consumer has not applied after the threshold."""
    report = outbox_fallback_run()
    return {"applied": report.applied, "duplicates": report.duplicates, "failed": report.failed, "busy": report.busy}


@shared_task(name="outbox.tasks.outbox_purge")
def outbox_purge() -> dict:
    """Beat, hourly: delete applied outbox rows older than OUTBOX_PURGE_AFTER_DAYS, then inbox rows
    older than OUTBOX_INBOX_RETENTION_DAYS (in that order: an outbox row goes once its inbox row exists)."""
    return {"outbox": outbox_purge_run(), "inbox": inbox_purge_run()}
