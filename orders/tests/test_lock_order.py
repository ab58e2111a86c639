"""The lock order of every use case that moves stock, read from the SQL it sends (real MariaDB).

The rule is written once, in `common.db`: the use case's own row first (the order, or the batch's
queue requests), then the rows that belong to that order or user, the hot shared stock rows last
(`common.db.hot_write`: right before COMMIT; only the queue consumer writes its own, already locked
request rows after them). Each test
captures the statements of one use case and lists, in order, the tables whose existing rows they
lock (`SELECT ... FOR UPDATE` and `UPDATE`; a repeat of the previous table is listed once). Any
change of that order fails here, on purpose: check it against the rule, then update the list.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import executed_sql
from orders.models import Order, OrderStatus, QueueRequest
from orders.queue.allocation import queue_process_batch
from orders.services import LineRequest, checkout_initiate, expire_due_orders, order_cancel
from orders.tests.helpers import fund, give_coupon, make_product
from payments.services import payment_process
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LOCKING = re.compile(r"^\s*(?:SELECT\b.*?\bFROM\s+`(?P<read>\w+)`.*\bFOR UPDATE\b|UPDATE\s+`(?P<write>\w+)`)", re.S)


def locked_tables(statements: list[str]) -> list[str]:
    """The tables whose rows the statements lock, in order, consecutive repeats collapsed."""
    tables: list[str] = []
    for sql in statements:
        match = LOCKING.match(sql)
        if match:
            table = match["read"] or match["write"]
            if not tables or tables[-1] != table:
                tables.append(table)
    return tables


def run(use_case) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        use_case()
    return locked_tables(executed_sql(ctx))


@pytest.fixture
def shopper():
    """A funded user with a coupon and two products in stock: every kind of row a use case locks."""
    user = UserFactory()
    fund(user, 1_000_000)
    products = [make_product(stock=10, price=10_000), make_product(stock=10, price=5_000)]
    return user, give_coupon(user, discount_value=1_000), products


def place(user, user_coupon, products) -> Order:
    lines = [LineRequest(products[1].pk, 1), LineRequest(products[0].pk, 2, gift_wrap=True)]
    return checkout_initiate(user_id=user.pk, direct_items=lines, user_coupon_id=user_coupon.pk)


def test_checkout_locks_the_users_wallet_and_coupon_then_the_stock_rows(shopper):
    user, user_coupon, products = shopper
    locked = run(lambda: place(user, user_coupon, products))
    assert locked == ["shop_pointwallet", "shop_usercoupon", "inventory_stock"]


def test_payment_locks_order_wallet_coupon_reservations_then_stock(shopper):
    user, user_coupon, products = shopper
    order = place(user, user_coupon, products)
    locked = run(lambda: payment_process(user_id=user.pk, order_id=order.pk, amount=order.final_amount))
    assert locked == [
        "orders_order",
        "shop_pointwallet",
        "shop_usercoupon",
        "inventory_reservation",
        "orders_order",  # its status, on the row locked first
        "inventory_stock",  # a hot write: last, right before COMMIT
    ]


def test_paid_cancel_locks_order_payment_wallet_coupon_reservations_then_stock(shopper):
    user, user_coupon, products = shopper
    order = place(user, user_coupon, products)
    payment_process(user_id=user.pk, order_id=order.pk, amount=order.final_amount)
    locked = run(lambda: order_cancel(order_id=order.pk, user_id=user.pk, reason="changed mind"))
    assert locked == [
        "orders_order",
        "payments_payment",
        "shop_pointwallet",
        "payments_payment",  # REFUNDED, on the row locked before the wallet
        "shop_usercoupon",
        "orders_orderitem",  # its cart lines are free again
        "inventory_reservation",
        "inventory_stock",
    ]


def test_expiry_locks_orders_coupons_reservations_then_stock(shopper):
    user, user_coupon, products = shopper
    order = place(user, user_coupon, products)
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    locked = run(expire_due_orders)
    assert locked == ["orders_order", "shop_usercoupon", "orders_orderitem", "inventory_reservation", "inventory_stock"]
    assert Order.objects.get(pk=order.pk).status == OrderStatus.EXPIRED


def test_queue_allocation_locks_requests_sse_counters_wallets_then_stock():
    product = make_product(stock=1, price=10_000, is_flash_sale=True)
    users = [UserFactory() for _ in range(3)]
    for user in users[:2]:
        fund(user, 100_000)  # the third cannot pay: INSUFFICIENT_BALANCE
    requests = [
        QueueRequest.objects.create(
            request_id=uuid.uuid4(), user=user, product=product, quantity=1, queue_position=position
        )
        for position, user in enumerate(users, start=1)
    ]
    locked = run(lambda: queue_process_batch(request_ids=[r.request_id for r in requests]))
    assert locked == [
        "orders_queuerequest",
        "django_eventstream_eventcounter",
        "shop_pointwallet",
        "inventory_stock",
        "orders_queuerequest",  # COMPLETED / FAILED, on the rows locked first
    ]
    statuses = dict(QueueRequest.objects.values_list("user_id", "error_code"))
    assert statuses == {users[0].pk: "", users[1].pk: "SOLD_OUT", users[2].pk: "INSUFFICIENT_BALANCE"}


def test_a_queued_checkout_locks_its_request_sse_counter_wallet_coupon_then_stock(shopper):
    from orders.queue.checkout import checkout_request_serve

    user, user_coupon, products = shopper
    request = QueueRequest.objects.create(
        request_id=uuid.uuid4(),
        user=user,
        kind=QueueRequest.Kind.ORDER,
        quantity=3,
        lines=[
            {"productId": products[1].pk, "quantity": 1, "giftWrap": False, "giftMessage": ""},
            {"productId": products[0].pk, "quantity": 2, "giftWrap": True, "giftMessage": ""},
        ],
        user_coupon_id=user_coupon.pk,
        partition_key=f"product:{products[1].pk}",
        queue_position=1,
    )
    locked = run(lambda: checkout_request_serve(request_id=request.request_id, mode=QueueRequest.Mode.QUEUED))
    assert locked == [
        "orders_queuerequest",
        "django_eventstream_eventcounter",
        "shop_pointwallet",
        "shop_usercoupon",
        "inventory_stock",
        "orders_queuerequest",  # COMPLETED, on the row locked first
    ]
    request.refresh_from_db()
    assert request.status == "COMPLETED" and request.order.user_coupon_id == user_coupon.pk
