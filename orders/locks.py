"""Row locks of the orders app (the lock order is in `common.db`)."""

from __future__ import annotations

from orders.errors import OrderNotFound
from orders.models import Order


def lock_order(order_id: int, *, user_id: int | None = None) -> Order:
    """Lock one order row (404 if unknown, or not the given user's)."""
    qs = Order.objects.select_for_update().filter(pk=order_id)
    if user_id is not None:
        qs = qs.filter(user_id=user_id)
    order = qs.first()
    if order is None:
        raise OrderNotFound()
    return order
