"""Coupons: first-come-first-served issuing, pricing, and the coupon's life with an order.

Issuing (`coupon_issue`), in one transaction:
1. a Redis sold-out flag answers 409 at once without touching the database (an optimisation only:
   Redis down or the flag expired just means we ask the database);
2. one plain read (the coupon, and whether the user holds it) refuses unknown (404), inactive (400),
   visibly sold-out (409, and the flag is set) and already issued (409) requests without taking any
   lock. Once a coupon is sold out everybody gets COUPON_SOLD_OUT, holders included (their coupon is
   listed under /coupons/users/{id});
3. the hot counter moves with one guarded `UPDATE coupon SET issued_quantity = issued_quantity + 1
   WHERE id = ? AND issued_quantity < total_quantity`: 0 rows means sold out. It answers the count it
   reached (`LAST_INSERT_ID`, `common.mysql.update_returning`), so the coupon row, locked from here to
   COMMIT, is not read again; the answer's remainingQuantity is the total read in step 2 minus that
   count;
4. the user's `UserCoupon` row is inserted (the unique (user, coupon) key makes a second one
   impossible; a racing duplicate fails and the savepoint undoes its +1) and the `CouponIssued`
   outbox row is written.
The UPDATE comes before the insert on purpose: the insert's foreign-key check takes a *shared* lock
on the coupon row, and upgrading that to the UPDATE's exclusive lock deadlocks between two issuers
(measured: BUSY_RETRY after 3 retries with 32 threads). Exclusive first, then the insert, never waits.
The answer is sent after the commit, so a 200 always names a row that exists.

With an order (`user_coupon_quote` / `_hold` / `_release` / `_use` / `_restore`): `held_order_id` is
the live unpaid order a coupon backs; `used_order_id` the paid order that consumed it. Every change
is a guarded UPDATE keyed by the order id (indexed), so replays and races are no-ops.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.core.cache import caches
from django.db import IntegrityError, connection
from redis.exceptions import RedisError

from common.bulk_sql import fetch_one, insert_instance
from common.db import use_case
from common.mysql import update_returning
from outbox.services import outbox_enqueue
from shop.errors import CouponAlreadyIssued, CouponNotActive, CouponNotFound, CouponNotUsable, CouponSoldOut
from shop.models import Coupon, UserCoupon

log = logging.getLogger(__name__)

SOLD_OUT_FLAG_SECONDS = 60  # short, so a coupon whose quantity was raised heals by itself


# --- Pricing ----------------------------------------------------------------------------------
def coupon_discount(*, coupon: Coupon, order_amount: int) -> int:
    """The discount for `order_amount`: 0 below the minimum; FIXED = its value; PERCENTAGE = floor of
    the percentage. `max_discount_amount` caps either kind. Never negative, never above the amount."""
    if order_amount <= 0 or order_amount < coupon.minimum_order_amount:
        return 0
    if coupon.discount_type == Coupon.DiscountType.FIXED:
        discount = coupon.discount_value
    else:
        discount = order_amount * coupon.discount_value // 100
    if coupon.max_discount_amount is not None:
        discount = min(discount, coupon.max_discount_amount)
    return max(0, min(discount, order_amount))


# --- Issuing ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class IssuedCoupon:
    user_coupon_id: int
    coupon_id: int
    issued_quantity: int
    remaining_quantity: int


def coupon_issue(*, coupon_id: int, user_id: int, now: datetime) -> IssuedCoupon:
    """Issue one unit of the coupon to the user (see the module docstring for the steps)."""
    if coupon_sold_out_flagged(coupon_id=coupon_id):  # before any database work, even a savepoint
        raise CouponSoldOut(data={"couponId": coupon_id})
    return _coupon_issue_in_db(coupon_id=coupon_id, user_id=user_id, now=now)


@use_case
def _coupon_issue_in_db(*, coupon_id: int, user_id: int, now: datetime) -> IssuedCoupon:
    state = _issue_state(coupon_id, user_id)
    if state is None:
        raise CouponNotFound(data={"couponId": coupon_id})
    if not state.valid_from <= now <= state.valid_to:
        raise CouponNotActive(data={"couponId": coupon_id, "validFrom": state.valid_from, "validTo": state.valid_to})
    if state.issued_quantity >= state.total_quantity:  # before "already issued", so the flag gets set
        _refuse_sold_out(coupon_id)
    if state.already_issued:
        raise CouponAlreadyIssued(data={"couponId": coupon_id})

    issued = update_returning(_TAKE_ONE_SQL, (coupon_id,))
    if issued is None:
        _refuse_sold_out(coupon_id)
    try:
        user_coupon_id = insert_instance(UserCoupon(user_id=user_id, coupon_id=coupon_id, issued_at=now)).pk
    except IntegrityError:  # a racing request of the same user committed first: the savepoint undoes +1
        raise CouponAlreadyIssued(data={"couponId": coupon_id}) from None
    outbox_enqueue(
        aggregate_type="coupon",
        aggregate_id=coupon_id,
        event_type="CouponIssued",
        payload={"userCouponId": user_coupon_id, "couponId": coupon_id, "userId": user_id},
    )
    return IssuedCoupon(user_coupon_id, coupon_id, issued, max(0, state.total_quantity - issued))


@dataclass(frozen=True)
class _IssueState:
    valid_from: datetime
    valid_to: datetime
    issued_quantity: int
    total_quantity: int
    already_issued: bool  # the user holds this coupon


# Step 2's reads in one statement, written out: through the ORM the coupon's read and the holder's
# check were two round trips and cost about 0.25 ms of CPU each to compile (docs/REPORT.md).
_ISSUE_STATE_SQL = (
    "SELECT c.valid_from, c.valid_to, c.issued_quantity, c.total_quantity,"
    " EXISTS (SELECT 1 FROM shop_usercoupon uc WHERE uc.user_id = %s AND uc.coupon_id = c.id)"
    " FROM shop_coupon c WHERE c.id = %s"
)


def _issue_state(coupon_id: int, user_id: int) -> _IssueState | None:
    row = fetch_one(_ISSUE_STATE_SQL, [user_id, coupon_id])
    if row is None:
        return None
    valid_from, valid_to, issued, total, held = row
    as_aware = connection.ops.convert_datetimefield_value  # stored as UTC; the ORM's own conversion
    return _IssueState(
        as_aware(valid_from, None, connection), as_aware(valid_to, None, connection), issued, total, bool(held)
    )


# The guarded counter (step 3): it answers the count it reached itself (`update_returning`).
_TAKE_ONE_SQL = (
    "UPDATE `shop_coupon` SET `issued_quantity` = LAST_INSERT_ID(`issued_quantity` + 1)"
    " WHERE `id` = %s AND `issued_quantity` < `total_quantity`"
)


def _refuse_sold_out(coupon_id: int) -> None:
    coupon_sold_out_flag_set(coupon_id=coupon_id)
    raise CouponSoldOut(data={"couponId": coupon_id})


def _flag_key(coupon_id: int) -> str:
    return f"coupon:soldout:{coupon_id}"


def coupon_sold_out_flagged(*, coupon_id: int) -> bool:
    try:
        return bool(caches["default"].get(_flag_key(coupon_id)))
    except RedisError:
        return False


def coupon_sold_out_flag_set(*, coupon_id: int) -> None:
    """Set only once the database refused (issued == total, committed): the flag never invents a sell-out."""
    try:
        caches["default"].set(_flag_key(coupon_id), 1, SOLD_OUT_FLAG_SECONDS)
    except RedisError:
        log.info("sold-out flag for coupon %s not set: Redis unavailable", coupon_id)


def coupon_sold_out_flag_clear(*, coupon_ids: list[int]) -> None:
    """After the quantity was raised or the issues reset (admin, `reset_coupons`)."""
    try:
        caches["default"].delete_many([_flag_key(i) for i in coupon_ids])
    except RedisError:
        log.warning("sold-out flags for coupons %s not cleared: Redis unavailable", coupon_ids)


# --- A coupon with an order (called by checkout, payment, expiry and cancel) --------------------
@use_case
def user_coupon_quote(*, user_coupon_id: int, user_id: int, order_amount: int, now: datetime) -> int:
    """Lock the user's coupon, check it can back a new order of `order_amount`, return the discount.

    409 COUPON_NOT_USABLE with `data.reason` otherwise. Holds nothing: see `user_coupon_hold`.
    """
    user_coupon, coupon = _lock_user_coupon(user_coupon_id, user_id)
    return _usable_discount(user_coupon, coupon, order_amount, now, order_id=None)


@use_case
def user_coupon_hold(*, user_coupon_id: int, user_id: int, order_amount: int, order_id: int, now: datetime) -> int:
    """Make the coupon back `order_id` (re-validated under the row lock) and return the discount.

    Holding it again for the same order is a no-op that returns the same discount.
    """
    user_coupon, coupon = _lock_user_coupon(user_coupon_id, user_id)
    discount = _usable_discount(user_coupon, coupon, order_amount, now, order_id=order_id)
    if user_coupon.held_order_id == order_id:
        return discount
    held = UserCoupon.objects.filter(
        pk=user_coupon_id, user_id=user_id, status=UserCoupon.Status.ISSUED, held_order_id__isnull=True
    ).update(held_order_id=order_id)
    if not held:  # unreachable while the row lock is held; kept as the guard's own answer
        raise CouponNotUsable(data={"userCouponId": user_coupon_id, "reason": "IN_USE"})
    return discount


def user_coupon_release(*, order_id: int) -> None:
    """The unpaid order `order_id` expired or was cancelled: its coupon is free again."""
    UserCoupon.objects.filter(held_order_id=order_id, status=UserCoupon.Status.ISSUED).update(held_order_id=None)


def user_coupon_use(*, order_id: int, now: datetime) -> None:
    """The order holding the coupon was paid: the coupon is USED by it."""
    UserCoupon.objects.filter(held_order_id=order_id, status=UserCoupon.Status.ISSUED).update(
        status=UserCoupon.Status.USED, used_order_id=order_id, used_at=now, held_order_id=None
    )


def user_coupon_restore(*, order_id: int) -> None:
    """The paid order `order_id` was cancelled: the coupon it used is ISSUED (usable) again."""
    UserCoupon.objects.filter(used_order_id=order_id, status=UserCoupon.Status.USED).update(
        status=UserCoupon.Status.ISSUED, used_order_id=None, used_at=None
    )


def _lock_user_coupon(user_coupon_id: int, user_id: int) -> tuple[UserCoupon, Coupon]:
    """Lock only the user's row; the coupon row is read without a lock (it is the hot row of issuing)."""
    user_coupon = UserCoupon.objects.select_for_update().filter(pk=user_coupon_id, user_id=user_id).first()
    if user_coupon is None:  # unknown or another user's: the same answer, nothing leaks
        raise CouponNotUsable(data={"userCouponId": user_coupon_id, "reason": "NOT_FOUND"})
    return user_coupon, Coupon.objects.get(pk=user_coupon.coupon_id)


def _usable_discount(
    user_coupon: UserCoupon, coupon: Coupon, order_amount: int, now: datetime, *, order_id: int | None
) -> int:
    def refuse(reason: str, **extra) -> CouponNotUsable:
        return CouponNotUsable(data={"userCouponId": user_coupon.pk, "reason": reason, **extra})

    if user_coupon.status != UserCoupon.Status.ISSUED:
        raise refuse("NOT_ISSUED", status=user_coupon.status)
    if user_coupon.held_order_id is not None and user_coupon.held_order_id != order_id:
        raise refuse("IN_USE", orderId=user_coupon.held_order_id)
    if now < coupon.valid_from:
        raise refuse("NOT_YET_VALID", validFrom=coupon.valid_from)
    if now > coupon.valid_to:
        raise refuse("EXPIRED", validTo=coupon.valid_to)
    if order_amount < coupon.minimum_order_amount:
        raise refuse("BELOW_MINIMUM", minimumOrderAmount=coupon.minimum_order_amount, orderAmount=order_amount)
    return coupon_discount(coupon=coupon, order_amount=order_amount)
