"""Payments through the real relay and consumer: every paid order CONFIRMED once, with its sales,
SSE notification and data-platform message; latency from the payment's commit to CONFIRMED."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from django.db import connection

from orders.models import Order
from orders.services import LineRequest, checkout_initiate
from orders.tests.helpers import fund, make_product
from outbox.models import OutboxEvent, ProcessedEvent
from outbox.tests.processes import percentiles, start_both
from payments.services import payment_process
from shop.models import SalesDaily
from shop.tests.factories import UserFactory
from tests.support.kafka import read_topic
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ORDERS = 200


def pay_all(orders: list[Order], *, threads: int = 4) -> dict[int, float]:
    """Pay every order from `threads` threads; returns order id -> time its payment committed."""
    committed: dict[int, float] = {}
    errors: list[BaseException] = []

    def lane(part: list[Order]) -> None:
        try:
            for order in part:
                payment_process(user_id=order.user_id, order_id=order.pk, amount=order.final_amount)
                committed[order.pk] = time.time()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=lane, args=(orders[n::threads],)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors
    return committed


def test_every_paid_order_is_confirmed_once_with_its_follow_up_effects(outbox_processes, capsys):
    products = [make_product(stock=1_000, price=1_000) for _ in range(5)]
    orders = []
    for n in range(ORDERS):
        user = UserFactory()
        fund(user, 100_000)
        product = products[n % len(products)]
        orders.append(checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 1 + n % 3)]))
    start_both(outbox_processes)  # relay active, consumer assigned (a warm-up event went through)

    started = time.monotonic()
    committed = pay_all(orders)
    rate = ORDERS / (time.monotonic() - started)
    ids = [o.pk for o in orders]
    wait_until(
        lambda: Order.objects.filter(pk__in=ids, status="CONFIRMED").count() == ORDERS,
        timeout=90,
        what=f"{ORDERS} orders CONFIRMED",
        details=outbox_processes.logs,
    )

    confirmed_at = dict(Order.objects.filter(pk__in=ids).values_list("pk", "confirmed_at"))
    latency = percentiles([confirmed_at[pk].timestamp() - committed[pk] for pk in ids])
    with capsys.disabled():
        print(f"\n[outbox] {ORDERS} payments at {rate:.0f}/s; payment commit -> CONFIRMED {latency}")

    sold = {p.pk: sum(1 + n % 3 for n in range(ORDERS) if n % len(products) == i) for i, p in enumerate(products)}
    assert dict(SalesDaily.objects.values_list("product_id", "quantity")) == sold  # each payment counted once
    payment_events = [str(e.id) for e in OutboxEvent.objects.filter(type="PaymentCompleted")]
    assert len(payment_events) == ORDERS
    assert ProcessedEvent.objects.filter(consumer="outbox", event_id__in=payment_events).count() == ORDERS
    wait_until(  # the data-platform message leaves after the effects' commit
        lambda: ProcessedEvent.objects.filter(consumer="outbox.data-platform").count() == ORDERS,
        timeout=30,
        what="every data-platform message recorded",
    )
    feed = read_topic(outbox_processes.topic("data-platform"), expect=ORDERS)
    assert Counter(int(m.key()) for m in feed) == Counter(ids)  # one message per paid order
    # Reported, not asserted tightly (the goal is p95 < 1 s at 500/s; this machine is shared): a stall fails.
    assert latency.p95 < 15.0
