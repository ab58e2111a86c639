"""Row locks of the orders app (the lock order is in `common.db`)."""

from __future__ import annotations

from orders.errors import OrderNotFound
from orders.models import Order

# Written out and read through `raw` (model instances all the same): compiling this one SELECT cost the
# ORM more CPU than running it, on every payment, cancel and expiry (docs/REPORT.md).
_COLUMNS = ", ".join(f"`{field.column}`" for field in Order._meta.concrete_fields)
_LOCK_SQL = f"SELECT {_COLUMNS} FROM `orders_order` WHERE `id` = %s FOR UPDATE"
_LOCK_OWN_SQL = f"SELECT {_COLUMNS} FROM `orders_order` WHERE `id` = %s AND `user_id` = %s FOR UPDATE"


def lock_order(order_id: int, *, user_id: int | None = None) -> Order:
    """Lock one order row (404 if unknown, or not the given user's)."""
    if user_id is None:
        rows = Order.objects.raw(_LOCK_SQL, [order_id])
    else:
        rows = Order.objects.raw(_LOCK_OWN_SQL, [order_id, user_id])
    order = next(iter(rows), None)
    if order is None:
        raise OrderNotFound()
    return order
