from celery import shared_task

from outbox.processing import outbox_fallback_run, outbox_purge_run


@shared_task(name="outbox.tasks.outbox_fallback")
def outbox_fallback() -> dict:
    """Beat, every 60 s: apply the outbox events the consumer has not applied after the threshold."""
    report = outbox_fallback_run()
    return {"applied": report.applied, "duplicates": report.duplicates, "failed": report.failed, "busy": report.busy}


@shared_task(name="outbox.tasks.outbox_purge")
def outbox_purge() -> int:
    """Beat, hourly: delete applied outbox rows older than OUTBOX_PURGE_AFTER_DAYS."""
    return outbox_purge_run()
