"""`common.serializers.Serializer`: fields built once per class give DRF's answers and errors, under threads too."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.urls import get_resolver
from rest_framework import serializers

from common.serializers import Serializer
from orders.api import CheckoutInitiateView, OrderOutput
from orders.errors import InvalidItems
from orders.models import Order, OrderItem
from payments.api import PaymentProcessView

PER_INSTANCE = {"context": {"any": "value"}}  # a context makes DRF's own per-instance fields (the reference)


def an_order(n: int) -> Order:
    """An order with `n` lines, in memory (the serializers read attributes only)."""
    at = dt.datetime(2026, 12, 5, 7, 0, n % 60, tzinfo=dt.UTC)
    order = Order(
        pk=1000 + n,
        order_number=f"O{n:08d}",
        user_id=n,
        status=Order.Status.PAID,
        total_amount=1500 * n,
        discount_amount=0,
        final_amount=1500 * n,
        delivery_address=f"street {n}",
        expires_at=at,
        created_at=at,
        paid_at=at,
    )
    order.created_items = [
        OrderItem(product_id=p, product_name=f"p{p}", quantity=p, unit_price=1500, line_total=1500 * p, gift_message="")
        for p in range(1, n + 1)
    ]
    return order


def all_project_serializers() -> list[type]:
    assert get_resolver().url_patterns  # importing them imports every view module, so every serializer class exists
    seen, todo = [], [serializers.Serializer]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.split(".")[0] in {"common", "orders", "payments", "shop", "inventory", "outbox"}:
                seen.append(sub)
    return seen


def test_every_serializer_of_the_project_builds_its_fields_once():
    classes = all_project_serializers()
    assert OrderOutput in classes and len(classes) >= 20
    library_based = {"ShopTokenRefreshSerializer"}  # simplejwt's, whose view passes a context anyway
    assert [c.__qualname__ for c in classes if not issubclass(c, Serializer)] == sorted(library_based)


def test_the_fields_are_shared_unless_a_context_or_partial_asks_for_the_instance():
    assert OrderOutput().fields is OrderOutput(an_order(1)).fields
    assert OrderOutput(**PER_INSTANCE).fields is not OrderOutput().fields
    assert PaymentProcessView.Input(partial=True).fields is not PaymentProcessView.Input().fields
    items = OrderOutput().fields["items"]  # a nested serializer follows its root
    assert items.child.fields is OrderOutput().fields["items"].child.fields


@pytest.mark.parametrize("n", [0, 1, 3])
def test_an_output_is_what_drfs_own_fields_give(n):
    order = an_order(n)
    shared = OrderOutput(order).data
    assert shared == OrderOutput(order, **PER_INSTANCE).data
    assert [line["quantity"] for line in shared["items"]] == list(range(1, n + 1))
    assert shared["paidAt"] == f"2026-12-05T16:00:{n % 60:02d}+09:00"  # the active time zone, read per call
    assert (
        OrderOutput([an_order(2), order], many=True).data
        == OrderOutput([an_order(2), order], many=True, **PER_INSTANCE).data
    )


@pytest.mark.parametrize(
    "data",
    [
        {"directOrderItems": [{"productId": 42, "quantity": 2, "giftWrap": True}], "deliveryAddress": "here"},
        {"cartItemIds": [1, 2, 3]},
        {"directOrderItems": [{"productId": "42", "quantity": 0}]},  # nested errors
        {"directOrderItems": [], "cartItemIds": [1]},  # the validate() rule
        {"userCouponId": 1.5},
        {},
    ],
)
def test_validation_gives_drfs_answers_and_errors(data):
    def outcome(**kwargs):
        serializer = CheckoutInitiateView.Input(data=data, **kwargs)
        try:
            valid = serializer.is_valid()
        except InvalidItems as exc:  # the checkouts' validate() rule raises its own 400
            return "raised", str(exc)
        return (True, serializer.validated_data) if valid else (False, serializer.errors)

    assert outcome() == outcome(**PER_INSTANCE)


def test_one_instances_errors_do_not_reach_the_next():
    bad = CheckoutInitiateView.Input(data={"directOrderItems": [{"productId": 0, "quantity": 1}]})
    good = CheckoutInitiateView.Input(data={"directOrderItems": [{"productId": 7, "quantity": 1}]})
    assert not bad.is_valid() and "directOrderItems" in bad.errors
    assert good.is_valid(), good.errors
    assert good.validated_data["directOrderItems"][0]["productId"] == 7
    assert bad.errors == {"directOrderItems": [{"productId": ["Ensure this value is greater than or equal to 1."]}]}


def test_threads_sharing_the_fields_each_get_their_own_answer():
    """16 threads validate and serialize their own values through the same field objects at once."""
    rounds, threads, failures = 300, 16, []
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        start.wait()
        for i in range(rounds):
            n = (t + i) % 4
            if OrderOutput(an_order(n)).data != OrderOutput(an_order(n), **PER_INSTANCE).data:
                failures.append(("output", t, i))
            amount = t * 1000 + i
            data = {"orderId": t + 1, "amount": amount} if i % 3 else {"orderId": "x", "amount": -1}
            payment = PaymentProcessView.Input(data=data)
            if payment.is_valid():
                if dict(payment.validated_data) != {"orderId": t + 1, "amount": amount, "paymentMethod": "BALANCE"}:
                    failures.append(("valid", t, i, dict(payment.validated_data)))
            elif set(payment.errors) != {"orderId", "amount"} or i % 3:
                failures.append(("errors", t, i, payment.errors))

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert failures == []
