"""What the shop's events do once the outbox delivers them (registered with `outbox.handlers`)."""

from __future__ import annotations

from common.sse.notify import Notification, sse_notify
from outbox.events import Event
from outbox.handlers import field_int, handles


@handles("CouponIssued", many=True)
def coupons_issued(events: list[Event]) -> None:
    """SSE `coupon-issued` to each user (stored with the inbox records, published after commit)."""
    sse_notify(
        Notification(
            field_int(event.payload, "userId"),
            "coupon-issued",
            {"userCouponId": event.payload.get("userCouponId"), "couponId": event.payload.get("couponId")},
        )
        for event in events
    )
