"""Property tests for pricing: coupon discounts and checkout totals, over generated inputs.

`coupon_discount` is pure, so it is checked on unsaved coupons (hundreds of examples, no database).
Checkout totals go through the real `checkout_initiate` against the database: each example runs in a
savepoint that is rolled back, so examples do not see each other's orders or reservations.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory.models import Stock
from orders.errors import InsufficientBalanceAtCheckout
from orders.models import Order
from orders.services import LineRequest, checkout_initiate
from orders.tests.helpers import fund
from shop.models import Coupon, PointWallet, UserCoupon
from shop.models.wallet import MAX_BALANCE
from shop.pricing import GIFT_WRAP_PRICE
from shop.services.coupons import coupon_discount
from shop.tests.factories import CouponFactory, ProductFactory

PROPERTIES = settings(max_examples=300, deadline=None, database=None)
CHECKOUTS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

amounts = st.integers(min_value=-1_000, max_value=10**12)
caps = st.none() | st.integers(min_value=0, max_value=10**9)


@st.composite
def coupons(draw) -> Coupon:
    kind = draw(st.sampled_from(Coupon.DiscountType.values))
    top = 100 if kind == Coupon.DiscountType.PERCENTAGE else 10**9  # the model's check constraint
    return Coupon(
        discount_type=kind,
        discount_value=draw(st.integers(min_value=0, max_value=top)),
        minimum_order_amount=draw(st.integers(min_value=0, max_value=10**7)),
        max_discount_amount=draw(caps),
    )


@given(coupon=coupons(), amount=amounts)
@PROPERTIES
def test_discount_is_never_negative_nor_above_the_amount(coupon, amount):
    discount = coupon_discount(coupon=coupon, order_amount=amount)
    assert 0 <= discount <= max(amount, 0)


@given(coupon=coupons(), amount=amounts)
@PROPERTIES
def test_discount_respects_the_cap_and_the_minimum(coupon, amount):
    discount = coupon_discount(coupon=coupon, order_amount=amount)
    if coupon.max_discount_amount is not None:
        assert discount <= coupon.max_discount_amount
    if amount < coupon.minimum_order_amount:
        assert discount == 0


@given(coupon=coupons(), amount=amounts)
@PROPERTIES
def test_discount_follows_the_fixed_and_percentage_rules(coupon, amount):
    discount = coupon_discount(coupon=coupon, order_amount=amount)
    if amount <= 0 or amount < coupon.minimum_order_amount:
        assert discount == 0
        return
    cap = coupon.max_discount_amount if coupon.max_discount_amount is not None else amount
    if coupon.discount_type == Coupon.DiscountType.FIXED:
        expected = min(coupon.discount_value, cap, amount)
    else:
        expected = min(amount * coupon.discount_value // 100, cap)  # floor: never more than the percentage
        assert discount * 100 <= amount * coupon.discount_value
    assert discount == expected


@given(coupon=coupons(), amount=st.integers(min_value=0, max_value=10**10), more=st.integers(0, 10**10))
@PROPERTIES
def test_a_bigger_order_never_gets_a_smaller_discount(coupon, amount, more):
    assert coupon_discount(coupon=coupon, order_amount=amount + more) >= coupon_discount(
        coupon=coupon, order_amount=amount
    )


# --- checkout totals through the real use case ----------------------------------------------------


@dataclass(frozen=True)
class Line:
    slot: int  # which of the prepared products
    price: int
    quantity: int
    gift_wrap: bool


lines = st.lists(
    st.builds(
        Line,
        slot=st.integers(0, 3),
        price=st.integers(min_value=1, max_value=25_000),  # 4 lines x 99 units stay under MAX_BALANCE
        quantity=st.integers(min_value=1, max_value=99),
        gift_wrap=st.booleans(),
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda line: line.slot,
)


@pytest.fixture
def shelf(db, user):
    products = [ProductFactory() for _ in range(4)]
    Stock.objects.bulk_create(Stock(product=p, quantity=10_000) for p in products)
    fund(user, MAX_BALANCE)
    return products


@pytest.mark.django_db
@given(order_lines=lines, coupon=st.none() | coupons())
@CHECKOUTS
def test_checkout_totals_add_up(shelf, user, order_lines, coupon):
    # up to 4 lines of 99 units: above the per-user held-units limit, which is not what this is about
    with override_settings(MAX_HELD_UNITS_PER_USER=4 * 99), transaction.atomic():
        for line in order_lines:
            type(shelf[0]).objects.filter(pk=shelf[line.slot].pk).update(price=line.price)
        user_coupon = None
        if coupon is not None:
            coupon = CouponFactory(
                discount_type=coupon.discount_type,
                discount_value=coupon.discount_value,
                minimum_order_amount=0,  # usable: the minimum rule is covered above
                max_discount_amount=coupon.max_discount_amount,
                issued_quantity=1,
            )
            user_coupon = UserCoupon.objects.create(user=user, coupon=coupon)

        order = checkout_initiate(
            user_id=user.pk,
            direct_items=[LineRequest(shelf[li.slot].pk, li.quantity, li.gift_wrap) for li in order_lines],
            user_coupon_id=user_coupon.pk if user_coupon else None,
        )

        expected_lines = {
            shelf[li.slot].pk: li.price * li.quantity + (GIFT_WRAP_PRICE if li.gift_wrap else 0) for li in order_lines
        }
        total = sum(expected_lines.values())
        discount = coupon_discount(coupon=coupon, order_amount=total) if coupon else 0
        order = Order.objects.prefetch_related("items").get(pk=order.pk)
        assert {item.product_id: item.line_total for item in order.items.all()} == expected_lines
        assert order.total_amount == total
        assert order.discount_amount == discount
        assert order.final_amount == total - discount
        assert 0 <= order.discount_amount <= order.total_amount
        assert order.final_amount >= 0
        transaction.set_rollback(True)


@pytest.mark.django_db
@given(price=st.integers(min_value=1, max_value=25_000), quantity=st.integers(1, 99), short_by=st.integers(1, 10**6))
@CHECKOUTS
def test_checkout_refuses_a_final_amount_above_the_balance(shelf, user, price, quantity, short_by):
    with transaction.atomic():
        type(shelf[0]).objects.filter(pk=shelf[0].pk).update(price=price)
        final = price * quantity
        PointWallet.objects.filter(user=user).update(balance=max(0, final - short_by))
        with pytest.raises(InsufficientBalanceAtCheckout) as refused:
            checkout_initiate(user_id=user.pk, direct_items=[LineRequest(shelf[0].pk, quantity)])
        assert refused.value.data == {"required": final, "balance": max(0, final - short_by)}
        assert not Order.objects.filter(user=user).exists()
        transaction.set_rollback(True)
