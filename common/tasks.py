from celery import shared_task
from django.core.cache import cache

from common.audit import audit_invariants
from common.idempotency import purge_expired_keys

AUDIT_LOCK_KEY = "audit:running"
AUDIT_LOCK_SECONDS = 300


@shared_task(name="common.tasks.idempotency_purge")
def idempotency_purge() -> int:
    return purge_expired_keys()


@shared_task(name="common.tasks.audit")
def audit() -> bool | None:
    """Beat, every minute: run the invariant auditor (result on the sale dashboard and at /metrics).
    Skipped while another run holds the lock, so a slow audit never piles up behind itself."""
    if not cache.add(AUDIT_LOCK_KEY, 1, timeout=AUDIT_LOCK_SECONDS):
        return None
    try:
        return audit_invariants().ok
    finally:
        cache.delete(AUDIT_LOCK_KEY)
