from __future__ import annotations

from orders.errors import OrderNotFound
from orders.models import Order


def order_get(*, user_id: int, order_id: int) -> Order:
    order = Order.objects.prefetch_related("items").filter(pk=order_id, user_id=user_id).first()
    if order is None:
        raise OrderNotFound()
    return order


def order_list(*, user_id: int, last_id: int | None, size: int) -> list[Order]:
    qs = Order.objects.prefetch_related("items").filter(user_id=user_id).order_by("-pk")
    if last_id is not None:
        qs = qs.filter(pk__lt=last_id)
    return list(qs[: size + 1])
