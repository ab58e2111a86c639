"""Coupon reads: the issuable coupons and a user's coupons."""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, QuerySet

from shop.models import Coupon, UserCoupon


def coupon_list_issuable(*, now: datetime) -> QuerySet[Coupon]:
    """Coupons inside their validity window with units left, by id."""
    return Coupon.objects.filter(
        valid_from__lte=now, valid_to__gte=now, issued_quantity__lt=F("total_quantity")
    ).order_by("pk")


def user_coupon_list(*, user_id: int, now: datetime, usable_only: bool = False) -> list[UserCoupon]:
    """A user's coupons, newest first. `usable_only`: ISSUED, not backing a live order, valid now."""
    qs = UserCoupon.objects.filter(user_id=user_id).select_related("coupon").order_by("-pk")
    if usable_only:
        qs = qs.filter(
            status=UserCoupon.Status.ISSUED,
            held_order_id__isnull=True,
            coupon__valid_from__lte=now,
            coupon__valid_to__gte=now,
        )
    return list(qs)


def user_coupon_display_status(user_coupon: UserCoupon, *, now: datetime) -> str:
    """ISSUED coupons past their coupon's window show as EXPIRED (nothing rewrites the row for that)."""
    if user_coupon.status == UserCoupon.Status.ISSUED and user_coupon.coupon.valid_to < now:
        return UserCoupon.Status.EXPIRED
    return user_coupon.status
