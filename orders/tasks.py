from celery import shared_task

from orders.services import expire_due_orders as expire


@shared_task(name="orders.tasks.expire_due_orders")
def expire_due_orders() -> int:
    """Beat, every 15 s: expire unpaid orders whose hold has passed."""
    return expire()
