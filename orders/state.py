"""The order state machine, in one place.

    PENDING_PAYMENT -> PAID -> CONFIRMED
    PENDING_PAYMENT -> EXPIRED | CANCELLED
    PAID | CONFIRMED -> CANCELLED

Every transition is a guarded update (`... WHERE id = ? AND status = <current>`) on a row the
caller has locked, so of two racing transitions exactly one wins and the other sees the new state.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from orders.errors import InvalidTransition
from orders.models import Order, OrderStatus

S = OrderStatus
TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.EXPIRED, S.CANCELLED}),
    S.PAID: frozenset({S.CONFIRMED, S.CANCELLED}),
    S.CONFIRMED: frozenset({S.CANCELLED}),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
}


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def order_transition(order: Order, target: str, **fields: Any) -> None:
    """Move a locked order to `target` with a guarded update; raises InvalidTransition otherwise."""
    if not can_transition(order.status, target):
        raise InvalidTransition(data={"status": order.status, "attempted": target})
    updated = Order.objects.filter(pk=order.pk, status=order.status).update(
        status=target, updated_at=timezone.now(), **fields
    )
    if updated != 1:  # only possible if the caller did not lock the row
        raise InvalidTransition(data={"status": order.status, "attempted": target})
    order.status = target
    for name, value in fields.items():
        setattr(order, name, value)
