"""What the shop's events do once the outbox delivers them (registered with `outbox.handlers`)."""

from __future__ import annotations

from common.sse.notify import notify_after_commit
from outbox.events import Event
from outbox.handlers import field_int, handles


@handles("CouponIssued")
def coupon_issued(event: Event) -> None:
    """SSE `coupon-issued` to the user."""
    p = event.payload
    user_id = field_int(p, "userId")
    data = {"userCouponId": p.get("userCouponId"), "couponId": p.get("couponId")}
    notify_after_commit(user_id, "coupon-issued", data)
