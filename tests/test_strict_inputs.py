"""Checkout, orders, cancel and payments take only JSON integers and booleans where the contract
says so: `"5"`, `"٥"` (an Arabic-Indic digit, which `int()` accepts), `36.0` and `"yes"` are
400 INVALID_INPUT and change nothing. Each case first shows the same body with the right type passes."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from inventory.models import Reservation
from orders.models import Order
from orders.services import LineRequest, checkout_initiate
from orders.tests.helpers import balance_of, fund, give_coupon, make_product
from payments.models import Payment
from shop.services.cart import cart_item_set

pytestmark = pytest.mark.django_db

BAD_INTEGERS = ["5", "٥", 5.0, 36.0, True, "0x5", "5 "]
BAD_BOOLEANS = ["yes", "true", 1, 0, "1", None]


def counts() -> tuple[int, int, int]:
    return Order.objects.count(), Payment.objects.count(), Reservation.objects.count()


def assert_refused(response, field: str, before: tuple[int, int, int]) -> None:
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["errorCode"] == "INVALID_INPUT", body
    assert field in str(body["data"]["fields"]), body
    assert counts() == before


def replace(body: dict, path: tuple, value) -> dict:
    """A deep copy of `body` with the item at `path` (keys and list indexes) set to `value`."""
    changed = copy.deepcopy(body)
    node = changed
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return changed


@pytest.fixture
def shop(auth_api, user):
    fund(user, 1_000_000)
    product = make_product(stock=100, price=1_000)
    return auth_api, user, product


def checkout_body(user, product) -> dict:
    return {"userId": user.pk, "directOrderItems": [{"productId": product.pk, "quantity": 5, "giftWrap": False}]}


def orders_body(user, product) -> dict:
    return {"userId": user.pk, "items": [{"productId": product.pk, "quantity": 5, "giftWrap": True}]}


CHECKOUT_FIELDS = [("userId",), ("directOrderItems", 0, "productId"), ("directOrderItems", 0, "quantity")]
ORDERS_FIELDS = [("userId",), ("items", 0, "productId"), ("items", 0, "quantity")]


def run_cases(send: Callable[[dict], object], body: dict, fields: list[tuple], bad_values: list, expected: int):
    for path in fields:
        for value in bad_values:
            before = counts()
            assert_refused(send(replace(body, path, value)), str(path[-1]), before)
    accepted = send(body)
    assert accepted.status_code == expected, accepted.content[:300]  # the same body, right types, passes


def test_checkout_initiate_takes_only_json_integers_and_booleans(shop):
    client, user, product = shop

    def send(body):
        return client.post("/api/v1/checkout/initiate", body, format="json")

    body = checkout_body(user, product)
    run_cases(send, body, [("directOrderItems", 0, "giftWrap")], BAD_BOOLEANS, expected=200)
    run_cases(send, body, CHECKOUT_FIELDS, BAD_INTEGERS, expected=200)
    user_coupon = give_coupon(user)
    run_cases(send, {**body, "userCouponId": user_coupon.pk}, [("userCouponId",)], BAD_INTEGERS, expected=200)
    line = cart_item_set(user_id=user.pk, product_id=product.pk, quantity=1).line(product.pk)
    run_cases(send, {"cartItemIds": [line.pk]}, [("cartItemIds", 0)], BAD_INTEGERS, expected=200)


def test_orders_create_takes_only_json_integers_and_booleans(shop):
    client, user, product = shop

    def send(body):
        return client.post("/api/v1/orders", body, format="json")

    body = orders_body(user, product)
    run_cases(send, body, [("items", 0, "giftWrap")], BAD_BOOLEANS, expected=201)
    run_cases(send, body, ORDERS_FIELDS, BAD_INTEGERS, expected=201)
    user_coupon = give_coupon(user)
    run_cases(send, {**body, "usedCouponIds": [user_coupon.pk]}, [("usedCouponIds", 0)], BAD_INTEGERS, expected=201)


def test_order_cancel_takes_only_a_json_integer_user_id(shop):
    client, user, product = shop
    order = checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 1)])

    def send(body):
        return client.post(f"/api/v1/orders/{order.pk}/cancel", body, format="json")

    run_cases(send, {"userId": user.pk}, [("userId",)], BAD_INTEGERS, expected=200)
    assert Order.objects.get(pk=order.pk).status == "CANCELLED"


def test_payment_takes_only_json_integers(shop):
    client, user, product = shop
    order = checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 2)])
    balance = balance_of(user)

    def send(body):
        return client.post("/api/v1/payments/process", body, format="json")

    body = {"orderId": order.pk, "userId": user.pk, "amount": order.final_amount}
    run_cases(send, body, [("orderId",), ("userId",), ("amount",)], BAD_INTEGERS + [2000.0], expected=200)
    assert Payment.objects.count() == 1 and balance_of(user) == balance - order.final_amount


@pytest.mark.parametrize("raw", ["٥", "+5", " 5", "5_0", "５"])
def test_integer_query_parameters_take_only_ascii_digits(shop, raw):
    client, user, product = shop
    line = cart_item_set(user_id=user.pk, product_id=product.pk, quantity=1).line(product.pk)
    for response in (
        client.put(f"/api/v1/cart/items/{line.pk}?quantity={raw}"),
        client.get("/api/v1/orders", {"size": raw}),
        client.get(f"/api/v1/points/{user.pk}/histories", {"lastId": raw}),
    ):
        assert response.status_code == 400, response.content[:300]
        assert response.json()["errorCode"] == "INVALID_PARAMETER"
    assert client.put(f"/api/v1/cart/items/{line.pk}?quantity=5").json()["data"]["totalQuantity"] == 5
