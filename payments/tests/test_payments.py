from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import client_for
from inventory.models import Reservation
from orders.models import Order
from orders.services import LineRequest, checkout_initiate, order_cancel
from orders.tests.helpers import balance_of, fund, give_coupon, make_product, stock_of
from outbox.models import OutboxEvent
from payments.models import Payment
from shop.models import PointHistory, UserCoupon

pytestmark = pytest.mark.django_db


def place(user, product, quantity=1, **kwargs):
    return checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, quantity)], **kwargs)


def pay(client, order, **overrides):
    body = {"orderId": order.pk, "userId": client.user.pk, "amount": order.final_amount, **overrides}
    return client.post("/api/v1/payments/process", body, format="json")


def test_payment_does_everything_in_one_transaction(auth_api, user):
    fund(user, 100_000)
    product = make_product(stock=5, price=20_000)
    user_coupon = give_coupon(user, discount_value=2_000)
    order = place(user, product, 2, user_coupon_id=user_coupon.pk)
    response = pay(auth_api, order)
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert (data["orderId"], data["amount"], data["status"], data["paymentMethod"]) == (
        order.pk,
        38_000,
        "COMPLETED",
        "BALANCE",
    )
    assert balance_of(user) == 62_000
    debit = PointHistory.objects.get(user=user, type="USE")
    assert (debit.amount, debit.balance_after, debit.order_id) == (-38_000, 62_000, order.pk)
    assert stock_of(product) == (3, 0)
    assert set(Reservation.objects.filter(order_id=order.pk).values_list("status", flat=True)) == {"CONSUMED"}
    coupon = UserCoupon.objects.get(pk=user_coupon.pk)
    assert (coupon.status, coupon.used_order_id) == ("USED", order.pk)
    assert Order.objects.get(pk=order.pk).status == "PAID"
    event = OutboxEvent.objects.get(type="PaymentCompleted")
    assert (event.aggregatetype, event.aggregateid) == ("order", str(order.pk))
    assert event.payload["orderId"] == order.pk and event.payload["amount"] == 38_000
    assert event.payload["items"] == [{"productId": product.pk, "quantity": 2}]


def assert_unchanged(user, product, order, balance, stock):
    assert balance_of(user) == balance
    assert stock_of(product) == stock
    assert not Payment.objects.filter(order_id=order.pk).exists()
    assert not OutboxEvent.objects.filter(type="PaymentCompleted").exists()


def test_wrong_amount_is_400(auth_api, user):
    fund(user, 100_000)
    product = make_product()
    order = place(user, product)
    response = pay(auth_api, order, amount=order.final_amount - 1)
    assert response.status_code == 400 and response.json()["errorCode"] == "AMOUNT_MISMATCH"
    assert_unchanged(user, product, order, 100_000, (10, 1))


def test_another_users_order_is_404(user, other_user):
    fund(user, 100_000)
    fund(other_user, 100_000)
    product = make_product()
    order = place(user, product)
    other = client_for(other_user)
    response = other.post(
        "/api/v1/payments/process", {"orderId": order.pk, "amount": order.final_amount}, format="json"
    )
    assert response.status_code == 404 and response.json()["errorCode"] == "ORDER_NOT_FOUND"
    assert balance_of(other_user) == 100_000
    assert_unchanged(user, product, order, 100_000, (10, 1))


def test_paying_for_another_user_id_is_403(auth_api, user, other_user):
    fund(user, 100_000)
    product = make_product()
    order = place(user, product)
    response = pay(auth_api, order, userId=other_user.pk)
    assert response.status_code == 403
    assert_unchanged(user, product, order, 100_000, (10, 1))


def test_expired_order_is_not_payable(auth_api, user):
    fund(user, 100_000)
    product = make_product()
    order = place(user, product)
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = pay(auth_api, order)
    assert response.status_code == 409 and response.json()["errorCode"] == "ORDER_NOT_PAYABLE"
    assert_unchanged(user, product, order, 100_000, (10, 1))


def test_cancelled_order_is_not_payable(auth_api, user):
    fund(user, 100_000)
    product = make_product()
    order = place(user, product)
    order_cancel(order_id=order.pk, user_id=user.pk)
    response = pay(auth_api, order)
    assert response.status_code == 409 and response.json()["errorCode"] == "ORDER_NOT_PAYABLE"
    assert_unchanged(user, product, order, 100_000, (10, 0))


def test_already_paid_order_is_not_payable_twice(auth_api, user):
    fund(user, 100_000)
    product = make_product()
    order = place(user, product)
    assert pay(auth_api, order).status_code == 200
    again = pay(auth_api, order)
    assert again.status_code == 409 and again.json()["errorCode"] == "ORDER_NOT_PAYABLE"
    assert balance_of(user) == 90_000 and Payment.objects.count() == 1


def test_unsupported_method_is_400(auth_api, user):
    fund(user, 100_000)
    product = make_product()
    order = place(user, product)
    response = pay(auth_api, order, paymentMethod="CARD")
    assert response.status_code == 400 and response.json()["errorCode"] == "UNSUPPORTED_PAYMENT_METHOD"
    assert_unchanged(user, product, order, 100_000, (10, 1))


def test_insufficient_balance_at_payment_is_409(auth_api, user):
    fund(user, 10_000)
    product = make_product(price=10_000)
    order = place(user, product)
    from shop.models import PointWallet

    PointWallet.objects.filter(user=user).update(balance=9_999)  # spent elsewhere after checkout
    response = pay(auth_api, order)
    assert response.status_code == 409 and response.json()["errorCode"] == "INSUFFICIENT_BALANCE"
    assert_unchanged(user, product, order, 9_999, (10, 1))
    assert Order.objects.get(pk=order.pk).status == "PENDING_PAYMENT"


def test_an_unknown_order_is_404_and_malformed_inputs_400(auth_api, user):
    assert pay(auth_api, Order(pk=999_999, final_amount=1)).status_code == 404
    for body in (
        {"orderId": "x", "amount": 1},
        {"orderId": 1, "amount": -5},
        {"orderId": 1},
        {"amount": 1},
        {"orderId": 2**80, "amount": 1},
    ):
        response = auth_api.post("/api/v1/payments/process", body, format="json")
        assert response.status_code == 400, body


def test_payment_reads_are_the_owners(auth_api, user, other_user):
    fund(user, 100_000)
    order = place(user, make_product())
    payment_id = pay(auth_api, order).json()["data"]["id"]
    assert auth_api.get(f"/api/v1/payments/{payment_id}").status_code == 200
    assert [p["id"] for p in auth_api.get(f"/api/v1/payments/users/{user.pk}").json()["data"]] == [payment_id]
    other = client_for(other_user)
    assert other.get(f"/api/v1/payments/{payment_id}").status_code == 404
    assert other.get(f"/api/v1/payments/users/{user.pk}").status_code == 403
