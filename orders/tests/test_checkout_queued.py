"""`POST /checkout`: every checkout through the queue, with synchronous failover (orders/queue/checkout.py).

Real MariaDB, Redis and broker (a topic of our own); the consumer is a real `manage.py run_consumer
checkout` child process, or runs in this process (`drain`) where a test needs to decide when it runs.
A broker that does not acknowledge is a producer pointed at a port where nothing listens.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from common.audit import audit_invariants
from common.kafka import ensure_topics, reset_producer
from common.models import IdempotencyKey
from conftest import client_for
from inventory.models import Reservation, Stock
from orders.models import Order, OrderItem, QueueRequest
from orders.queue.checkout import CheckoutWanted, checkout_enqueue
from orders.queue.keys import QUEUE_TOPIC
from orders.services import LineRequest
from orders.tests.helpers import fund, give_coupon, make_product, stock_of
from orders.tests.queue_support import answered, drain, events_of
from shop.models import UserCoupon
from shop.services.cart import cart_item_set
from shop.tests.factories import UserFactory
from tests.support.ports import free_port
from tests.support.processes import Child
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

URL = "/api/v1/checkout"


@pytest.fixture(autouse=True)
def audited(queue_topic) -> Iterator[None]:
    """Every test on a queue topic of its own, and the invariant auditor clean after it."""
    yield
    result = audit_invariants()
    assert result.ok, result.report()


@pytest.fixture
def consumer(checkout_consumer) -> Child:
    return checkout_consumer()


@contextmanager
def broker_silent() -> Iterator[None]:
    """The web's producer talks to a port where nothing listens: no ack ever comes (ProduceFailed)."""
    reset_producer()
    with override_settings(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}", KAFKA_PRODUCE_TIMEOUT_MS=300):
        try:
            yield
        finally:
            reset_producer()


def funded_users(count: int) -> list:
    """Users with a wallet and its ledger row (the auditor checks one against the other)."""
    users = UserFactory.create_batch(count)
    for user in users:
        fund(user, 1_000_000)
    return users


def shopper(balance: int = 1_000_000):
    user = UserFactory()
    fund(user, balance)
    return user, client_for(user)


def wait_answered(client, request_id: str, child: Child | None = None) -> dict:
    def done():
        return QueueRequest.objects.get(request_id=request_id).status != "QUEUED"

    wait_until(done, timeout=30, what=f"request {request_id}" + (f"; consumer log:\n{child.tail()}" if child else ""))
    response = client.get(f"{URL}/status/{request_id}")
    assert response.status_code == 200, response.json()
    return response.json()["data"]


# --- through the queue ----------------------------------------------------------------------------


def test_a_multi_line_checkout_with_a_coupon_is_served_through_the_queue(consumer):
    user, client = shopper()
    a, b = make_product(stock=5, price=10_000), make_product(stock=5, price=3_000)
    user_coupon = give_coupon(user, discount_value=1_000)
    body = {
        "items": [
            {"productId": a.pk, "quantity": 2, "giftWrap": True, "giftMessage": "hi"},
            {"productId": b.pk, "quantity": 1},
        ],
        "userCouponId": user_coupon.pk,
    }

    response = client.post(URL, body, format="json")

    assert response.status_code == 200, response.json()
    accepted = response.json()["data"]
    assert accepted["mode"] == "QUEUED" and accepted["order"] is None
    assert set(accepted) == {"requestId", "mode", "queuePosition", "estimatedWaitSeconds", "order"}
    status = wait_answered(client, accepted["requestId"], consumer)
    assert status["status"] == "COMPLETED" and status["mode"] == "QUEUED" and status["errorCode"] is None
    assert set(status) == {
        "requestId",
        "queuePosition",
        "status",
        "mode",
        "orderId",
        "orderNumber",
        "finalAmount",
        "errorCode",
    }
    order = Order.objects.get(pk=status["orderId"])
    assert (order.total_amount, order.discount_amount, order.final_amount) == (25_000, 1_000, 24_000)
    assert order.user_coupon_id == user_coupon.pk and status["finalAmount"] == 24_000
    items = sorted(OrderItem.objects.filter(order=order).values_list("product_id", "quantity", "line_total"))
    assert items == sorted([(a.pk, 2, 22_000), (b.pk, 1, 3_000)])
    assert stock_of(a) == (5, 2) and stock_of(b) == (5, 1)
    assert Reservation.objects.filter(order_id=order.pk, status="ACTIVE").count() == 2
    assert UserCoupon.objects.get(pk=user_coupon.pk).held_order_id == order.pk
    row = QueueRequest.objects.get(request_id=accepted["requestId"])
    assert (row.kind, row.partition_key, row.product_id, row.quantity) == ("ORDER", f"product:{a.pk}", None, 3)
    assert [kind for kind, _ in events_of(user.pk)] == ["checkout-queued", "checkout-completed"]
    assert events_of(user.pk)[1][1]["orderId"] == order.pk


def test_a_cart_checkout_is_served_through_the_queue_keyed_by_user(consumer):
    user, client = shopper()
    a, b = make_product(stock=5, price=1_000), make_product(stock=5, price=2_000)
    lines = [cart_item_set(user_id=user.pk, product_id=p.pk, quantity=q).line(p.pk) for p, q in ((a, 3), (b, 1))]

    response = client.post(URL, {"cartItemIds": [line.pk for line in lines]}, format="json")

    assert response.status_code == 200, response.json()
    status = wait_answered(client, response.json()["data"]["requestId"], consumer)
    assert status["status"] == "COMPLETED", status
    order = Order.objects.get(pk=status["orderId"])
    assert order.final_amount == 5_000
    assert sorted(OrderItem.objects.filter(order=order).values_list("cart_item_id", "cart_item_live")) == sorted(
        (line.pk, True) for line in lines
    )
    assert stock_of(a) == (5, 3) and stock_of(b) == (5, 1)
    assert QueueRequest.objects.get(request_id=status["requestId"]).partition_key == f"user:{user.pk}"

    # the same cart line again: the consumer's checkout refuses it, the request FAILED with its code
    again = client.post(URL, {"cartItemIds": [lines[0].pk]}, format="json")
    failed = wait_answered(client, again.json()["data"]["requestId"], consumer)
    assert (failed["status"], failed["errorCode"], failed["orderId"]) == ("FAILED", "CART_ITEM_IN_OPEN_ORDER", None)
    assert Order.objects.filter(user=user).count() == 1


def test_40_concurrent_queued_checkouts_of_5_units_make_exactly_5_orders(consumer):
    product = make_product(stock=5, price=1_000)
    users = funded_users(40)

    def one(user) -> str:
        try:
            wanted = CheckoutWanted(user_id=user.pk, lines=[LineRequest(product.pk, 1)])
            ticket = checkout_enqueue(wanted=wanted)
            assert ticket.request.mode == "QUEUED"
            return str(ticket.request.request_id)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(one, users))
    wait_until(lambda: answered() == 40, timeout=60, what=f"all answers; consumer log:\n{consumer.tail()}")

    assert len(set(ids)) == 40
    rows = QueueRequest.objects.filter(request_id__in=ids)
    assert rows.filter(status="COMPLETED", mode="QUEUED").count() == 5
    assert rows.filter(status="FAILED", error_code="INSUFFICIENT_STOCK").count() == 35
    assert Order.objects.count() == 5
    assert stock_of(product) == (5, 5)
    assert Reservation.objects.filter(product=product, status="ACTIVE").count() == 5


def test_refusals_at_admission_queue_nothing():
    user, client = shopper()
    stranger_coupon = give_coupon(UserFactory(), discount_value=1_000)
    product = make_product(stock=5)
    line = [{"productId": product.pk, "quantity": 1}]

    cases = [
        ({"items": line, "cartItemIds": [1]}, 400, "INVALID_ITEMS"),
        ({"items": []}, 400, "INVALID_ITEMS"),
        ({"items": [{"productId": 10**12, "quantity": 1}]}, 404, "PRODUCT_NOT_FOUND"),
        ({"cartItemIds": [10**12]}, 404, "CART_ITEM_NOT_FOUND"),
        ({"items": line, "userCouponId": stranger_coupon.pk}, 409, "COUPON_NOT_USABLE"),
        ({"items": [{"productId": product.pk, "quantity": 201}]}, 400, "INVALID_INPUT"),
    ]
    for body, status, code in cases:
        response = client.post(URL, body, format="json")
        assert (response.status_code, response.json()["errorCode"]) == (status, code), (body, response.json())
    assert not QueueRequest.objects.exists()


def test_the_status_of_another_users_request_is_404():
    user, client = shopper()
    product = make_product(stock=5)
    accepted = client.post(URL, {"items": [{"productId": product.pk, "quantity": 1}]}, format="json")
    request_id = accepted.json()["data"]["requestId"]
    drain(lambda: answered() == 1)

    assert client.get(f"{URL}/status/{request_id}").json()["data"]["status"] == "COMPLETED"
    _, stranger = shopper()
    refused = stranger.get(f"{URL}/status/{request_id}")
    assert refused.status_code == 404 and refused.json()["errorCode"] == "QUEUE_REQUEST_NOT_FOUND"
    assert request_id not in refused.content.decode()
    assert stranger.get(f"{URL}/status/{uuid.uuid4()}").status_code == 404


# --- failover -------------------------------------------------------------------------------------


def test_without_an_ack_the_same_call_serves_the_checkout_synchronously():
    user, client = shopper()
    product = make_product(stock=5, price=1_000)

    with broker_silent():
        response = client.post(URL, {"items": [{"productId": product.pk, "quantity": 2}]}, format="json")

    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert data["mode"] == "SYNC_FALLBACK"
    assert data["order"]["status"] == "PENDING_PAYMENT" and data["order"]["finalAmount"] == 2_000
    row = QueueRequest.objects.get(request_id=data["requestId"])
    assert (row.status, row.mode, row.order_id, row.live) == (
        "COMPLETED",
        "SYNC_FALLBACK",
        data["order"]["orderId"],
        None,
    )
    assert stock_of(product) == (5, 2)
    status = client.get(f"{URL}/status/{data['requestId']}").json()["data"]
    assert (status["status"], status["mode"], status["orderId"]) == ("COMPLETED", "SYNC_FALLBACK", row.order_id)


def test_a_synchronous_refusal_is_recorded_and_repeated_to_a_retry():
    user, client = shopper(balance=500)
    product = make_product(stock=5, price=1_000)
    body = {"items": [{"productId": product.pk, "quantity": 1}]}

    with broker_silent():
        first = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="sync-refused")
        assert first.status_code == 409 and first.json()["errorCode"] == "INSUFFICIENT_BALANCE"
        row = QueueRequest.objects.get(user=user)
        assert (row.status, row.mode, row.error_code) == ("FAILED", "SYNC_FALLBACK", "INSUFFICIENT_BALANCE")

    retried = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="sync-refused")  # the broker is back
    assert retried.status_code == 409 and retried.json()["errorCode"] == "INSUFFICIENT_BALANCE"
    assert QueueRequest.objects.filter(user=user).count() == 1 and not Order.objects.exists()


def worker_died_before_answering(key: str) -> None:
    """The stored answer as a killed web worker leaves it: IN_FLIGHT, never completed, taken over."""
    stale = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_STALE_SECONDS + 1)
    updated = IdempotencyKey.objects.filter(key=key).update(
        status=IdempotencyKey.Status.IN_FLIGHT, response_status=None, response_body=None, updated_at=stale
    )
    assert updated == 1


def test_an_idempotency_key_retried_across_the_outage_gives_one_order():
    user, client = shopper()
    product = make_product(stock=5, price=1_000)
    body = {"items": [{"productId": product.pk, "quantity": 1}]}

    # served by failover; the answer is lost (worker killed); the retry, broker back, names the same order
    with broker_silent():
        first = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-fallback")
    assert first.json()["data"]["mode"] == "SYNC_FALLBACK"
    worker_died_before_answering("k-fallback")
    again = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-fallback")
    assert again.status_code == 200 and "Idempotent-Replayed" not in again
    assert again.json()["data"]["order"]["orderId"] == first.json()["data"]["order"]["orderId"]
    assert again.json()["data"]["requestId"] == first.json()["data"]["requestId"]

    # queued (no consumer yet); the answer is lost; the retry meets the outage: served synchronously once
    queued = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-queued")
    assert queued.json()["data"]["mode"] == "QUEUED"
    worker_died_before_answering("k-queued")
    with broker_silent():
        retried = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-queued")
    assert retried.status_code == 200, retried.json()
    assert retried.json()["data"]["requestId"] == queued.json()["data"]["requestId"]
    assert retried.json()["data"]["mode"] == "SYNC_FALLBACK"
    # the first attempt's message is still on the topic: the consumer finds its row answered
    assert drain(lambda: True, min_batches=1) >= 1

    assert Order.objects.filter(user=user).count() == 2
    assert QueueRequest.objects.filter(user=user).count() == 2
    assert stock_of(product) == (5, 2)
    assert client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-queued")["Idempotent-Replayed"] == "true"


@override_settings(FLASH_SALE_MAX_PER_USER=100)
def test_during_an_outage_flash_products_get_503_at_once_without_touching_the_stock_row():
    """Failover is refused for flash-sale products: 20 concurrent buyers of a hot product get 503
    QUEUE_UNAVAILABLE and none of them locks or updates its stock row, while ordinary products are
    served synchronously."""
    flash = make_product(stock=100, price=1_000, is_flash_sale=True)
    ordinary = make_product(stock=100, price=1_000)
    users = funded_users(20)
    barrier = threading.Barrier(20)

    def buy(i: int):
        user = users[i]
        product = flash if i % 2 == 0 else ordinary
        barrier.wait()
        client = client_for(user)
        try:
            response = client.post(URL, {"items": [{"productId": product.pk, "quantity": 1}]}, format="json")
            return product.pk, response.status_code, response.json(), response.headers.get("Retry-After")
        finally:
            connection.close()

    with broker_silent():
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(buy, range(20)))
        with CaptureQueriesContext(connection) as captured:
            one = client_for(users[0]).post(URL, {"items": [{"productId": flash.pk, "quantity": 1}]}, format="json")

    for product_id, status, body, retry_after in answers:
        if product_id == flash.pk:
            assert (status, body["errorCode"]) == (503, "QUEUE_UNAVAILABLE") and int(retry_after) >= 1
        else:
            assert status == 200 and body["data"]["mode"] == "SYNC_FALLBACK", body
    assert one.status_code == 503
    assert not [q["sql"] for q in captured.captured_queries if "inventory_stock" in q["sql"]]
    stock = Stock.objects.get(pk=flash.pk)
    assert (stock.reserved_quantity, stock.version) == (0, 0)  # never reserved nor locked-and-bumped
    assert stock_of(ordinary) == (100, 10)
    assert not QueueRequest.objects.filter(product=None, status="QUEUED").exists()
    assert QueueRequest.objects.filter(mode="SYNC_FALLBACK", status="COMPLETED").count() == 10
    assert QueueRequest.objects.count() == 10  # the flash requests were withdrawn: nothing queued


def test_a_request_whose_message_was_lost_is_served_with_the_next_batch_of_any_key():
    user, client = shopper()
    a, b = make_product(stock=5, price=1_000), make_product(stock=5, price=1_000)
    elsewhere = f"{settings.KAFKA_TOPIC_PREFIX}_lost"
    ensure_topics([f"{elsewhere}.{QUEUE_TOPIC}"])
    with override_settings(KAFKA_TOPIC_PREFIX=elsewhere):  # where no consumer reads: as if the broker lost it
        lost = client.post(URL, {"items": [{"productId": a.pk, "quantity": 1}]}, format="json").json()["data"]
    QueueRequest.objects.filter(request_id=lost["requestId"]).update(
        created_at=timezone.now() - timedelta(seconds=settings.QUEUE_ORDER_SWEEP_SECONDS + 1)
    )
    later = client.post(URL, {"items": [{"productId": b.pk, "quantity": 1}]}, format="json").json()["data"]

    drain(lambda: answered() == 2)

    rows = {str(r.request_id): r for r in QueueRequest.objects.all()}
    assert rows[lost["requestId"]].status == rows[later["requestId"]].status == "COMPLETED"
    assert rows[lost["requestId"]].partition_key != rows[later["requestId"]].partition_key
    assert stock_of(a) == (5, 1) and stock_of(b) == (5, 1)
