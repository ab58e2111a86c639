"""What the order events do once the outbox delivers them (registered with `outbox.handlers`).

Each runs inside the transaction that records the event in the inbox (see `outbox.handlers`): the
order's follow-up state, the shop's sales statistics and cart, and the user's SSE notification
after the commit.
"""

from __future__ import annotations

import json

from django.utils import timezone

from common.kafka import OutgoingMessage, topic
from common.sse.notify import notify_after_commit
from orders.models import Order
from orders.services import order_confirm
from outbox.events import Event
from outbox.handlers import Publication, field_int, handles, items_of, local_day
from shop.services.cart import cart_remove_lines
from shop.services.catalog import sales_record


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


@handles("PaymentCompleted", publications=(DATA_PLATFORM,))
def payment_completed(event: Event) -> None:
    """PAID -> CONFIRMED (guarded), sales statistics, cart clean-up; then SSE `order-completed`.

    Sales are recorded even if the order is no longer PAID (cancelled meanwhile): the cancellation's
    own event subtracts them, in whichever order the two events arrive.
    """
    p = event.payload
    order_id, user_id = field_int(p, "orderId"), field_int(p, "userId")
    items = items_of(p)
    confirmed = order_confirm(order_id=order_id)
    day = local_day(p.get("paidAt"))
    for product_id, quantity in items:
        sales_record(product_id=product_id, quantity=quantity, day=day)
    cart_remove_lines(user_id=user_id, product_ids=[product_id for product_id, _ in items])
    if confirmed:
        data = {"orderId": order_id, "paymentId": p.get("paymentId"), "amount": p.get("amount"), "status": "CONFIRMED"}
        notify_after_commit(user_id, "order-completed", data)


def _order_ended(event: Event, sse_type: str) -> None:
    p = event.payload
    order_id, user_id = field_int(p, "orderId"), field_int(p, "userId")
    if p.get("wasPaid") is True:
        paid_at = Order.objects.filter(pk=order_id).values_list("paid_at", flat=True).first()
        day = timezone.localdate(paid_at) if paid_at else timezone.localdate()
        for product_id, quantity in items_of(p):
            sales_record(product_id=product_id, quantity=-quantity, day=day)
    data = {"orderId": order_id, "reason": p.get("reason") or "", "wasPaid": bool(p.get("wasPaid"))}
    notify_after_commit(user_id, sse_type, data)


@handles("OrderCancelled")
def order_cancelled(event: Event) -> None:
    """SSE `order-cancelled`; a paid order's sales are taken back out of the statistics."""
    _order_ended(event, "order-cancelled")


@handles("OrderExpired")
def order_expired(event: Event) -> None:
    """SSE `order-expired` (an expired order was never paid, but honour `wasPaid` if set)."""
    _order_ended(event, "order-expired")
