from celery import shared_task

from common.audit import audit_invariants
from common.idempotency import purge_expired_keys


@shared_task(name="common.tasks.idempotency_purge")
def idempotency_purge() -> int:
    return purge_expired_keys()


@shared_task(name="common.tasks.audit")
def audit() -> bool:
    """Beat, every 5 minutes: run the invariant auditor (result exported at /metrics)."""
    return audit_invariants().ok
