"""What each outbox event does: event type -> handler, shared by the Kafka consumer, the fallback and
dead-letter replay (`outbox.processing.event_apply` runs them).

A handler's `apply(event)` runs inside the transaction that records the event in the inbox: its
database effects commit with that record or not at all. Effects outside the database go in
`transaction.on_commit` (SSE, caches), or, when they must not be lost, in a `Publication`: a Kafka
message sent after the commit and recorded in the inbox under its own name, so a failure retries it
(at least once; see `outbox.processing.publications_send`).

Other apps' services are imported inside the functions: outbox must not import the domain apps at
module level (they import `outbox.services`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from common.kafka import topic
from common.sse import sse_push
from outbox.events import Event, MalformedEvent, OutboxMessage
from outbox.notify import notify

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Publication:
    """A follow-up message an event causes, sent after the effect committed, at least once."""

    name: str  # the inbox "consumer" that records it was sent
    build: Callable[[Event], OutboxMessage]


@dataclass(frozen=True)
class Handler:
    event_type: str
    apply: Callable[[Event], None]
    publications: tuple[Publication, ...] = ()


HANDLERS: dict[str, Handler] = {}


def handles(event_type: str, *, publications: tuple[Publication, ...] = ()):
    """Register the decorated function as the handler of `event_type`."""

    def register(fn: Callable[[Event], None]) -> Callable[[Event], None]:
        if event_type in HANDLERS and HANDLERS[event_type].apply is not fn:
            raise ValueError(f"a handler for {event_type!r} is registered already")
        HANDLERS[event_type] = Handler(event_type, fn, publications)
        return fn

    return register


# A notification whose effect committed just before the database went away is retried this long
# (on the consumer's notification threads, see `outbox.notify`): a restart takes a few seconds.
NOTIFY_RETRY_SECONDS = 30.0


def notify_after_commit(user_id: int, event_type: str, data: dict[str, Any]) -> None:
    """SSE `event_type` to the user once the inbox transaction committed (on the consumer's
    notification threads, see `outbox.notify`); a failure there is logged, never undoes anything."""
    push = functools.partial(sse_push, user_id, event_type, data, retry_seconds=NOTIFY_RETRY_SECONDS)
    transaction.on_commit(lambda: notify(push), robust=True)


# --- payload helpers ------------------------------------------------------------------------


def field_int(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MalformedEvent(f"{name} missing or not an integer")
    try:
        return int(value)
    except ValueError:
        raise MalformedEvent(f"{name} is not an integer: {value!r}") from None


def items_of(payload: dict[str, Any]) -> list[tuple[int, int]]:
    """[(productId, quantity)] sorted by product id (the lock order), quantities of a product summed."""
    items = payload.get("items") or []
    if not isinstance(items, list):
        raise MalformedEvent("items is not a list")
    totals: dict[int, int] = {}
    for item in items:
        if not isinstance(item, dict):
            raise MalformedEvent("an item is not an object")
        product_id = field_int(item, "productId")
        totals[product_id] = totals.get(product_id, 0) + field_int(item, "quantity")
    return sorted(totals.items())


def local_day(value: Any) -> dt.date:
    """The local calendar day of an ISO timestamp (today if absent)."""
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None:
        return timezone.localdate()
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt.UTC)
    return timezone.localdate(moment)


# --- handlers -------------------------------------------------------------------------------


def data_platform_message(event: Event) -> OutboxMessage:
    """One message per paid order on `<prefix>.data-platform`, keyed by order id; `eventId` lets the
    data platform drop the rare duplicate (see `outbox.processing.publications_send`)."""
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
    return OutboxMessage(
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
    from orders.services import order_confirm
    from shop.services.cart import cart_remove_lines
    from shop.services.catalog import sales_record

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
        from orders.models import Order
        from shop.services.catalog import sales_record

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


@handles("CouponIssued")
def coupon_issued(event: Event) -> None:
    """SSE `coupon-issued` to the user."""
    p = event.payload
    user_id = field_int(p, "userId")
    data = {"userCouponId": p.get("userCouponId"), "couponId": p.get("couponId")}
    notify_after_commit(user_id, "coupon-issued", data)
