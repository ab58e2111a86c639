"""What the order events do once the outbox delivers them (registered with `outbox.handlers`).

Each receives all the new events of its type of a chunk, inside the transaction that records them
in the inbox (see `outbox.handlers`), and writes them with a few statements whatever their number:
the orders' follow-up state, the users' carts and SSE notifications (stored with them, published
after commit), and the shop's sales statistics last (hot rows shared by every consumer; the lock
order of `common.db`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from common.kafka import OutgoingMessage, topic
from common.sse.notify import Notification, sse_notify
from orders.models import Order
from orders.services import orders_confirm
from outbox.events import Event
from outbox.handlers import Publication, field_int, handles, items_of, local_day
from shop.services.cart import carts_remove_lines
from shop.services.catalog import sales_record_many


def data_platform_message(event: Event) -> OutgoingMessage:
    """One message per paid order on `<prefix>.data-platform`, keyed by order id; `eventId` lets the
    data platform drop the rare duplicate (see `outbox.apply.publications_send`)."""
    p = event.payload
    order_id = field_int(p, "orderId")
    body = {
        "eventId": event.id,
        "eventType": "OrderPaid",
        "orderId": order_id,
        "userId": p.get("userId"),
        "paymentId": p.get("paymentId"),
        "amount": p.get("amount"),
        "items": p.get("items") or [],
        "paidAt": p.get("paidAt"),
    }
    return OutgoingMessage(
        topic=topic("data-platform"),
        key=str(order_id).encode(),
        value=json.dumps(body, separators=(",", ":")).encode(),
        headers=[("eventId", event.id.encode()), ("eventType", b"OrderPaid")],
    )


DATA_PLATFORM = Publication("outbox.data-platform", data_platform_message)


@dataclass(frozen=True)
class OrderEvent:
    """The fields of an order event the handlers use (a malformed payload raises MalformedEvent)."""

    order_id: int
    user_id: int
    items: list[tuple[int, int]]
    payload: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> OrderEvent:
        p = event.payload
        return cls(field_int(p, "orderId"), field_int(p, "userId"), items_of(p), p)


@handles("PaymentCompleted", publications=(DATA_PLATFORM,), many=True)
def payments_completed(events: list[Event]) -> None:
    """PAID -> CONFIRMED (guarded), cart clean-up, SSE `order-completed`, sales statistics.

    Sales are recorded even if the order is no longer PAID (cancelled meanwhile): the cancellation's
    own event subtracts them, in whichever order the two events arrive.
    """
    paid = [OrderEvent.of(event) for event in events]
    confirmed = orders_confirm(order_ids=[e.order_id for e in paid])
    checked_out: dict[int, set[int]] = defaultdict(set)
    for e in paid:
        checked_out[e.user_id].update(product_id for product_id, _ in e.items)
    carts_remove_lines(lines=checked_out)
    sse_notify(
        Notification(
            e.user_id,
            "order-completed",
            {
                "orderId": e.order_id,
                "paymentId": e.payload.get("paymentId"),
                "amount": e.payload.get("amount"),
                "status": "CONFIRMED",
            },
        )
        for e in paid
        if e.order_id in confirmed
    )
    sales_record_many(
        sales=[
            (product_id, local_day(e.payload.get("paidAt")), quantity) for e in paid for product_id, quantity in e.items
        ]
    )


def _orders_ended(events: list[Event], sse_type: str) -> None:
    """SSE `sse_type`; a paid order's sales are taken back out of the statistics of its payment day."""
    ended = [OrderEvent.of(event) for event in events]
    paid = [e for e in ended if e.payload.get("wasPaid") is True]
    paid_on: dict[int, dt.date] = {}
    if paid:
        rows = Order.objects.filter(pk__in=[e.order_id for e in paid]).values_list("pk", "paid_at")
        paid_on = {pk: timezone.localdate(at) for pk, at in rows if at is not None}
    sse_notify(
        Notification(
            e.user_id,
            sse_type,
            {"orderId": e.order_id, "reason": e.payload.get("reason") or "", "wasPaid": bool(e.payload.get("wasPaid"))},
        )
        for e in ended
    )
    sales_record_many(
        sales=[
            (product_id, paid_on.get(e.order_id) or timezone.localdate(), -quantity)
            for e in paid
            for product_id, quantity in e.items
        ]
    )


@handles("OrderCancelled", many=True)
def orders_cancelled(events: list[Event]) -> None:
    """SSE `order-cancelled`; a paid order's sales are taken back out of the statistics."""
    _orders_ended(events, "order-cancelled")


@handles("OrderExpired", many=True)
def orders_expired(events: list[Event]) -> None:
    """SSE `order-expired` (an expired order was never paid, but honour `wasPaid` if set)."""
    _orders_ended(events, "order-expired")
