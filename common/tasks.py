from celery import shared_task

from common.idempotency import purge_expired_keys


@shared_task(name="common.tasks.idempotency_purge")
def idempotency_purge() -> int:
    return purge_expired_keys()
