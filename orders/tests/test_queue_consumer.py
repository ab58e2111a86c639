"""The `checkout` consumer in this process (real broker, database, Redis): allocation and exactly-once effects."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from django_eventstream.models import Event
from django_redis import get_redis_connection

from common.kafka import OutgoingMessage, produce_and_wait, topic
from inventory.models import Reservation, Stock
from orders.models import Order, OrderItem, QueueRequest
from orders.queue.admission import queue_request_enqueue, queue_request_withdraw
from orders.queue.allocation import queue_process_batch
from orders.queue.controls import queue_pause, queue_resume
from orders.queue.keys import QUEUE_TOPIC, queue_key
from orders.tests.helpers import stock_of
from orders.tests.queue_support import answered, bulk_users, drain, events_of, flash_product

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("queue_topic")]


def enqueue(users, product, quantity: int = 1) -> list[str]:
    return [
        str(queue_request_enqueue(user_id=u.pk, product_id=product.pk, quantity=quantity).request.request_id)
        for u in users
    ]


def statuses(request_ids) -> list[tuple[str, str]]:
    rows = {str(r.request_id): r for r in QueueRequest.objects.filter(request_id__in=request_ids)}
    return [(rows[i].status, rows[i].error_code) for i in request_ids]


def test_a_batch_is_allocated_in_arrival_order_while_stock_lasts():
    product = flash_product(stock=3, price=7_000)
    users = bulk_users(5, balance=50_000)
    users[1].pointwallet.delete()  # no points: refused early (incident 3), takes no stock
    before = Stock.objects.get(pk=product.pk).version
    ids = enqueue(users, product)

    drain(lambda: answered() == 5)

    assert statuses(ids) == [
        ("COMPLETED", ""),
        ("FAILED", "INSUFFICIENT_BALANCE"),
        ("COMPLETED", ""),
        ("COMPLETED", ""),
        ("FAILED", "SOLD_OUT"),
    ]
    orders = list(Order.objects.order_by("pk"))
    assert [o.user_id for o in orders] == [users[0].pk, users[2].pk, users[3].pk]
    for order in orders:
        assert (order.status, order.total_amount, order.discount_amount, order.final_amount) == (
            "PENDING_PAYMENT",
            7_000,
            0,
            7_000,
        )
        assert abs(order.expires_at - order.created_at - timedelta(seconds=settings.ORDER_HOLD_SECONDS)) < timedelta(
            seconds=1
        )
        assert order.queue_request.status == "COMPLETED" and order.queue_request.live is None
    assert OrderItem.objects.filter(product=product, quantity=1, unit_price=7_000, line_total=7_000).count() == 3
    assert Reservation.objects.filter(product=product, status="ACTIVE").count() == 3
    assert stock_of(product) == (3, 3)
    assert Stock.objects.get(pk=product.pk).version == before + 1  # one guarded update for the whole batch
    assert not QueueRequest.objects.filter(live=True).exists()

    first = events_of(users[0].pk)
    assert [t for t, _ in first] == ["checkout-queued", "checkout-completed"]
    assert first[1][1] | {"expiresAt": None} == {
        "requestId": ids[0],
        "status": "COMPLETED",
        "productId": product.pk,
        "quantity": 1,
        "queuePosition": 1,
        "orderId": orders[0].pk,
        "orderNumber": orders[0].order_number,
        "finalAmount": 7_000,
        "expiresAt": None,
    }
    assert events_of(users[4].pk)[1] == (
        "checkout-failed",
        {
            "requestId": ids[4],
            "status": "FAILED",
            "productId": product.pk,
            "quantity": 1,
            "queuePosition": 5,
            "errorCode": "SOLD_OUT",
        },
    )
    redis = get_redis_connection("default")
    assert 0 < redis.pttl(queue_key("soldout", product.pk)) <= settings.QUEUE_SOLD_OUT_FLAG_SECONDS * 1000
    assert int(redis.get(queue_key("done", product.pk))) == 5


@override_settings(FLASH_SALE_MAX_PER_USER=3)  # a 3-unit request: stock, not the per-user limit
def test_a_larger_request_that_does_not_fit_leaves_the_units_to_later_ones():
    product = flash_product(stock=2)
    users = bulk_users(2)
    ids = [*enqueue(users[:1], product, quantity=3), *enqueue(users[1:], product, quantity=2)]

    drain(lambda: answered() == 2)

    assert statuses(ids) == [("FAILED", "INSUFFICIENT_STOCK"), ("COMPLETED", "")]
    assert stock_of(product) == (2, 2)
    assert get_redis_connection("default").exists(queue_key("soldout", product.pk))


def test_a_replayed_batch_does_nothing_twice():
    product = flash_product(stock=2)
    users = bulk_users(4)
    ids = enqueue(users, product)
    drain(lambda: answered() == 4)
    snapshot = (Order.objects.count(), Reservation.objects.count(), Event.objects.count(), stock_of(product))

    # the same messages again, as after a crash before the offset commit: a new group reads from the start
    assert drain(lambda: True, min_batches=1) >= 1
    assert queue_process_batch(request_ids=[uuid.UUID(i) for i in ids]) == 0

    assert (Order.objects.count(), Reservation.objects.count(), Event.objects.count(), stock_of(product)) == snapshot
    assert snapshot[0] == 2
    assert [len(events_of(u.pk)) for u in users] == [2, 2, 2, 2]  # queued + exactly one result each


def test_a_paused_product_is_held_until_resumed_in_arrival_order():
    held, other = flash_product(stock=1), flash_product(stock=5)
    users = bulk_users(3)
    queue_pause(product_id=held.pk)
    held_ids = enqueue(users[:2], held)
    other_ids = enqueue(users[2:], other)

    drain(lambda: QueueRequest.objects.filter(product=other, status="COMPLETED").count() == 1)
    assert statuses(held_ids) == [("QUEUED", ""), ("QUEUED", "")]
    assert statuses(other_ids) == [("COMPLETED", "")]
    assert stock_of(held) == (1, 0)

    queue_resume(product_id=held.pk)  # produces a wake-up for the product
    drain(lambda: answered() == 3)
    assert statuses(held_ids) == [("COMPLETED", ""), ("FAILED", "SOLD_OUT")]


def test_claims_without_messages_are_served_and_messages_without_claims_do_nothing():
    product = flash_product(stock=5)
    users = bulk_users(2)
    # the web process died between its insert and its produce: a claim with no message
    orphan = QueueRequest.objects.create(
        request_id=uuid.uuid4(), user=users[0], product=product, quantity=1, queue_position=1
    )
    # a message whose claim was withdrawn after a 503 (it landed late), one from another database,
    # and garbage: none may create anything or block the partition
    for value in (
        {"type": "request", "requestId": str(uuid.uuid4()), "productId": product.pk},
        b"not json",
        {"type": "request", "requestId": "not-a-uuid"},
    ):
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        produce_and_wait(OutgoingMessage(topic(QUEUE_TOPIC), key=f"product:{product.pk}", value=raw))
    assert QueueRequest.objects.count() == 1
    later = enqueue(users[1:], product)

    drain(lambda: answered() == 2)

    assert statuses([str(orphan.request_id), *later]) == [("COMPLETED", ""), ("COMPLETED", "")]
    assert Order.objects.count() == 2 and stock_of(product) == (5, 2)


def test_a_withdrawal_that_loses_to_the_consumer_reports_the_answer():
    product = flash_product(stock=5)
    users = bulk_users(1)
    request = queue_request_enqueue(user_id=users[0].pk, product_id=product.pk).request
    drain(lambda: answered() == 1)

    served = queue_request_withdraw(request)  # the broker's ack timed out, but the message had landed and was served

    assert served is not None and served.status == "COMPLETED" and served.order is not None
    assert QueueRequest.objects.count() == 1


def test_rows_are_answered_in_chunks(monkeypatch):
    monkeypatch.setattr("orders.queue.allocation.CHUNK_SIZE", 3)
    product = flash_product(stock=4)
    users = bulk_users(8)
    ids = enqueue(users, product)
    before = Stock.objects.get(pk=product.pk).version

    assert queue_process_batch(request_ids=[uuid.UUID(ids[-1])]) == 8  # one message names the newest row

    assert [s for s, _ in statuses(ids)] == ["COMPLETED"] * 4 + ["FAILED"] * 4
    assert Stock.objects.get(pk=product.pk).version == before + 2  # chunks of 3: two of them allocated
    assert QueueRequest.objects.filter(completed_at__lte=timezone.now()).count() == 8


def test_old_sse_events_are_trimmed_by_the_consumer_side():
    from datetime import timedelta

    from django_eventstream.storage import EVENT_TIMEOUT

    from common.sse.storage import sse_trim

    product = flash_product(stock=5)
    users = bulk_users(2)
    enqueue(users, product)
    old = Event.objects.filter(channel=f"user-{users[0].pk}")
    old.update(created=timezone.now() - timedelta(minutes=EVENT_TIMEOUT + 1))

    assert sse_trim(every_seconds=0) == 2  # the placeholder and the checkout-queued event
    assert sse_trim(every_seconds=3600) == 0  # at most once per interval
    assert [t for t, _ in events_of(users[1].pk)] == ["checkout-queued"]
