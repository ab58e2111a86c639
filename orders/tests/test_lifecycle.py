from datetime import timedelta

import pytest
from django.utils import timezone

from inventory.models import Reservation
from orders.models import Order
from orders.services import LineRequest, checkout_initiate, expire_due_orders, order_cancel, order_confirm
from orders.state import TRANSITIONS, can_transition
from orders.tests.helpers import balance_of, fund, give_coupon, make_product, stock_of
from outbox.models import OutboxEvent
from payments.models import Payment
from payments.services import payment_process
from shop.models import PointHistory, UserCoupon

pytestmark = pytest.mark.django_db


def place(user, product, quantity=1, **kwargs):
    return checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, quantity)], **kwargs)


def test_transitions_allow_only_the_order_lifecycle():
    assert can_transition("PENDING_PAYMENT", "PAID")
    assert can_transition("PAID", "CONFIRMED") and can_transition("CONFIRMED", "CANCELLED")
    assert not can_transition("EXPIRED", "PAID") and not can_transition("PAID", "EXPIRED")
    assert not can_transition("CANCELLED", "CANCELLED")
    assert set(TRANSITIONS) == {"PENDING_PAYMENT", "PAID", "CONFIRMED", "EXPIRED", "CANCELLED"}


def test_expiry_releases_stock_and_coupon_and_writes_event(user):
    fund(user, 100_000)
    product = make_product(stock=4)
    user_coupon = give_coupon(user)
    due = place(user, product, 2, user_coupon_id=user_coupon.pk)
    fresh = place(user, product, 1)
    Order.objects.filter(pk=due.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert expire_due_orders() == 1
    assert Order.objects.get(pk=due.pk).status == "EXPIRED"
    assert Order.objects.get(pk=fresh.pk).status == "PENDING_PAYMENT"
    assert stock_of(product) == (4, 1)
    assert Reservation.objects.get(order_id=due.pk).status == "RELEASED"
    assert UserCoupon.objects.get(pk=user_coupon.pk).held_order_id is None
    event = OutboxEvent.objects.get(type="OrderExpired")
    assert event.payload["orderId"] == due.pk and event.payload["wasPaid"] is False
    assert expire_due_orders() == 0  # idempotent


def test_expiry_never_touches_a_paid_order(user):
    fund(user, 100_000)
    product = make_product()
    order = place(user, product)
    payment_process(user_id=user.pk, order_id=order.pk, amount=order.final_amount)
    assert expire_due_orders(now=timezone.now() + timedelta(hours=1)) == 0
    assert Order.objects.get(pk=order.pk).status == "PAID"


def test_cancel_unpaid_releases(auth_api, user):
    fund(user, 100_000)
    product = make_product(stock=3)
    user_coupon = give_coupon(user)
    order = place(user, product, 2, user_coupon_id=user_coupon.pk)
    response = auth_api.post(
        f"/api/v1/checkout/{order.pk}/cancel", {"userId": user.pk, "reason": "changed mind"}, format="json"
    )
    assert response.status_code == 200 and response.json()["data"]["status"] == "CANCELLED"
    assert stock_of(product) == (3, 0)
    assert UserCoupon.objects.get(pk=user_coupon.pk).held_order_id is None
    assert balance_of(user) == 100_000
    assert OutboxEvent.objects.get(type="OrderCancelled").payload["wasPaid"] is False


def test_cancel_paid_refunds_restocks_and_returns_coupon(auth_api, user):
    fund(user, 100_000)
    product = make_product(stock=3, price=10_000)
    user_coupon = give_coupon(user, discount_value=1_000)
    order = place(user, product, 2, user_coupon_id=user_coupon.pk)
    payment_process(user_id=user.pk, order_id=order.pk, amount=19_000)
    order_confirm(order_id=order.pk)
    response = auth_api.post(f"/api/v1/orders/{order.pk}/cancel", {}, format="json")
    assert response.status_code == 200
    assert balance_of(user) == 100_000
    assert PointHistory.objects.get(user=user, type="REFUND").amount == 19_000
    assert stock_of(product) == (3, 0)
    assert UserCoupon.objects.get(pk=user_coupon.pk).status == "ISSUED"
    assert Payment.objects.get(order=order).status == "REFUNDED"
    assert OutboxEvent.objects.get(type="OrderCancelled").payload["wasPaid"] is True


def test_cancel_twice_or_after_expiry_is_409_and_changes_nothing(auth_api, user):
    fund(user, 100_000)
    product = make_product(stock=3)
    order = place(user, product)
    assert auth_api.post(f"/api/v1/orders/{order.pk}/cancel", {}, format="json").status_code == 200
    again = auth_api.post(f"/api/v1/orders/{order.pk}/cancel", {}, format="json")
    assert again.status_code == 409 and again.json()["errorCode"] == "ORDER_NOT_CANCELLABLE"
    assert OutboxEvent.objects.filter(type="OrderCancelled").count() == 1
    assert stock_of(product) == (3, 0)


def test_cancel_of_another_users_order_is_404(user, other_user):
    from conftest import client_for

    fund(user, 100_000)
    product = make_product()
    order = place(user, product)
    response = client_for(other_user).post(f"/api/v1/orders/{order.pk}/cancel", {}, format="json")
    assert response.status_code == 404
    assert Order.objects.get(pk=order.pk).status == "PENDING_PAYMENT"


def test_confirm_only_from_paid(user):
    fund(user, 100_000)
    order = place(user, make_product())
    assert order_confirm(order_id=order.pk) is False
    payment_process(user_id=user.pk, order_id=order.pk, amount=order.final_amount)
    assert order_confirm(order_id=order.pk) is True
    assert order_confirm(order_id=order.pk) is False
    order_cancel(order_id=order.pk, user_id=None)
    assert Order.objects.get(pk=order.pk).status == "CANCELLED"
