"""Builders for the flash-sale queue tests (real MariaDB, Redis, broker): products and users in bulk,
the `checkout` consumer run in this process, and what the queue left behind (messages, answers,
stored SSE events). Topics of the test's own: the `queue_topic` fixture (orders/tests/conftest.py)."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import Message
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import connection
from django_eventstream.models import Event

from common.errors import DomainError
from common.kafka import ConsumerRunner, topic
from common.sse.storage import user_channel
from orders.consumers import CHECKOUT_CONSUMER
from orders.models import QueueRequest
from orders.queue.admission import queue_request_enqueue
from orders.queue.keys import QUEUE_TOPIC
from orders.tests.helpers import make_product
from shop.models import PointWallet, Product, User
from tests.support.kafka import FAST_GROUP, read_topic
from tests.support.sse import stored_payload


def flash_product(*, stock: int, price: int = 10_000) -> Product:
    return make_product(stock=stock, price=price, is_flash_sale=True)


def bulk_users(count: int, *, balance: int = 1_000_000) -> list[User]:
    """`count` users with a wallet, in two bulk inserts (factories would take seconds per thousand)."""
    tag = uuid.uuid4().hex[:8]
    password = make_password("correct-horse-battery")
    User.objects.bulk_create(
        [
            User(username=f"q{tag}-{i}", email=f"q{tag}-{i}@example.com", name=f"Queue {i}", password=password)
            for i in range(count)
        ]
    )
    users = list(User.objects.filter(username__startswith=f"q{tag}-").order_by("pk"))
    if balance:
        PointWallet.objects.bulk_create([PointWallet(user=u, balance=balance) for u in users])
    return users


def enqueue_all(users, product, *, threads: int = 16) -> list[str]:
    """Enqueue one request per user from a thread pool: the request id, or the refusal's error code."""

    def one(user) -> str:
        try:
            return str(queue_request_enqueue(user_id=user.pk, product_id=product.pk).request.request_id)
        except DomainError as exc:
            return exc.code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, users))


def inline_runner() -> ConsumerRunner:
    """The `checkout` consumer, in this process, on the current topic, in a fresh group."""
    group = f"{settings.KAFKA_GROUP_PREFIX}-{uuid.uuid4().hex}"
    spec = dataclasses.replace(CHECKOUT_CONSUMER, topics=(topic(QUEUE_TOPIC),), group=group)
    return ConsumerRunner(spec, **FAST_GROUP)


def drain(until: Callable[[], bool], *, timeout: float = 20, min_batches: int = 0) -> int:
    """Poll and handle batches in this process until `until()` holds after an empty poll (and at least
    `min_batches` were handled). Returns the number of batches handled."""
    runner = inline_runner()
    runner.consumer.subscribe(list(runner.spec.topics))
    deadline, handled = time.monotonic() + timeout, 0
    try:
        while time.monotonic() < deadline:
            batch = runner.poll_batch()
            if batch:
                runner.handle(batch)
                handled += 1
            elif handled >= min_batches and until():
                return handled
        raise TimeoutError("the consumer did not finish in time")
    finally:
        runner.consumer.close()


def topic_messages(*, expected: int, timeout: float = 10) -> list[Message]:
    """The messages of the current queue topic, from the start."""
    return read_topic(topic(QUEUE_TOPIC), expect=expected, timeout=timeout)


def answered() -> int:
    return QueueRequest.objects.exclude(status=QueueRequest.Status.QUEUED).count()


def events_of(user_id: int) -> list[tuple[str, dict]]:
    """The stored SSE events of a user's channel (without django-eventstream's eid-0 placeholder)."""
    rows = Event.objects.filter(channel=user_channel(user_id), eid__gt=0).order_by("eid")
    return [(e.type, stored_payload(e.data)) for e in rows]
