from __future__ import annotations

import uuid

from orders.errors import OrderNotFound, QueueRequestNotFound
from orders.models import Order, QueueRequest


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


def queue_request_get(*, user_id: int, request_id: uuid.UUID) -> QueueRequest:
    """The caller's own request (anyone else's is 404, not 403: ids are not disclosed)."""
    request = QueueRequest.objects.select_related("order").filter(request_id=request_id, user_id=user_id).first()
    if request is None:
        raise QueueRequestNotFound()
    return request
