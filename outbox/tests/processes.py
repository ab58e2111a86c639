"""The real outbox processes in tests: `manage.py outbox_relay` and `manage.py run_consumer outbox` run
as subprocesses against the test database, with Kafka topic and group prefixes unique to the test.

    @pytest.mark.slow
    def test_something(outbox_processes):
        outbox_processes.start_relay()
        outbox_processes.start_consumer()
        outbox_processes.wait_relay_active()
        ...  # write in committed transactions, then wait_until(...) for the effects

Use it as a fixture (`from outbox.tests.processes import outbox_processes` in a conftest or test
module). It needs `transactional_db` (the subprocesses only see committed rows) and overrides
KAFKA_TOPIC_PREFIX / KAFKA_GROUP_PREFIX in this process as well, so `common.kafka.topic()` here names
the topics the subprocesses use. Every process it started is stopped at teardown (SIGTERM, then
SIGKILL), by its own pid.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from django.conf import settings
from django.db import connection

from outbox.models import RelayCheckpoint

BASE_DIR = Path(settings.BASE_DIR)
# The topics our events use; created up front so the consumer's regex subscription sees them at once.
EVENT_TOPICS = ("events.order", "events.payment", "events.coupon", "events.dlq", "data-platform")


def wait_until(predicate: Callable[[], object], *, timeout: float, interval: float = 0.05, message: str = "") -> object:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message or predicate}")
        time.sleep(interval)


def ensure_topics(names: list[str], *, partitions: int = 4) -> None:
    admin = AdminClient({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS})
    existing = set(admin.list_topics(timeout=10).topics)
    missing = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names if n not in existing]
    for future in admin.create_topics(missing, operation_timeout=10).values() if missing else ():
        try:
            future.result(timeout=10)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def read_messages(topic_name: str, *, expect: int, timeout: float = 10.0) -> list[Message]:
    """Every message of `topic_name` from the beginning (no consumer group), waiting for `expect`."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": "unused",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    try:
        metadata = consumer.list_topics(topic_name, timeout=10).topics[topic_name]
        consumer.assign([TopicPartition(topic_name, p, OFFSET_BEGINNING) for p in metadata.partitions])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(messages) < expect and time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is not None and not msg.error():
                messages.append(msg)
        time.sleep(0.3)  # anything beyond `expect` that is already there
        while (msg := consumer.poll(0.1)) is not None:
            if not msg.error():
                messages.append(msg)
        return messages
    finally:
        consumer.close()


class OutboxProcesses:
    def __init__(self, *, prefix: str, log_dir: Path):
        self.prefix = prefix
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self.db_name = connection.settings_dict["NAME"]

    def topic(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_ENV="test",
            DB_NAME=self.db_name,
            REDIS_KEY_PREFIX=settings.REDIS_KEY_PREFIX,
            KAFKA_TOPIC_PREFIX=self.prefix,
            KAFKA_GROUP_PREFIX=self.prefix,
            # A new group's first assignment takes session.timeout/2 on tansu: keep it short in tests.
            KAFKA_SESSION_TIMEOUT_MS="2000",
            KAFKA_HEARTBEAT_INTERVAL_MS="500",
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def start(self, name: str, *args: str, **extra_env: str) -> subprocess.Popen:
        if name in self.procs and self.procs[name].poll() is None:
            raise RuntimeError(f"{name} is running already")
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env(**extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def start_relay(self, name: str = "relay", **extra_env: str) -> subprocess.Popen:
        return self.start(name, "outbox_relay", **extra_env)

    def start_consumer(self, name: str = "consumer", **extra_env: str) -> subprocess.Popen:
        return self.start(name, "run_consumer", "outbox", **extra_env)

    def stop(self, name: str, *, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (SIGKILL after `timeout`). Returns the exit code."""
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(5)

    def kill(self, name: str) -> None:
        """kill -9: no clean-up of any kind."""
        proc = self.procs[name]
        proc.kill()
        proc.wait(5)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def running(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def log(self, name: str, *, tail: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-tail:]) if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)}" for name in self.procs)

    # --- readiness ------------------------------------------------------------------------

    def relay_lock_holder(self) -> int | None:
        """Connection id holding the single-relay lock of the test database (None if free)."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT IS_USED_LOCK(%s)", [f"outbox_relay:{self.db_name}"[:64]])
            return cursor.fetchone()[0]

    def wait_relay_active(self, timeout: float = 20.0) -> None:
        """The relay holds its lock and has a checkpoint: commits from now on are relayed."""

        def active() -> bool:
            for name, proc in self.procs.items():
                if name.startswith("relay") and proc.poll() is not None:
                    pytest.fail(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
            return (
                self.relay_lock_holder() is not None
                and RelayCheckpoint.objects.filter(name=RelayCheckpoint.RELAY).exists()
            )

        wait_until(active, timeout=timeout, interval=0.1, message="the relay to become active")

    def binlog_connection_id(self, name: str = "relay") -> int | None:
        """The server connection id of the relay's current binlog stream (the relay logs it)."""
        found = re.findall(r"binlog connection id (\d+)", self.log(name, tail=10_000))
        return int(found[-1]) if found else None


@pytest.fixture
def outbox_processes(transactional_db, settings, tmp_path) -> Iterator[OutboxProcesses]:
    prefix = f"{settings.KAFKA_GROUP_PREFIX}_{uuid.uuid4().hex[:10]}"
    settings.KAFKA_TOPIC_PREFIX = prefix
    settings.KAFKA_GROUP_PREFIX = prefix
    ensure_topics([f"{prefix}.{name}" for name in EVENT_TOPICS])
    processes = OutboxProcesses(prefix=prefix, log_dir=tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()
