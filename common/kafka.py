"""Kafka: one shared producer, the registry of consumers, and the loop that runs any of them.

Consumers are declared once, next to their domain code (`orders/consumers.py`,
`outbox/consumers.py`), and run by one command: `manage.py run_consumer <name>`.

The runner's contract with a handler:
- the handler receives a *batch* of messages (all from one poll) and applies them inside its own
  database transaction(s); it must be idempotent (a replay after a crash must do nothing twice);
- offsets are committed synchronously only after the handler returned, i.e. after its transaction
  committed; if it raises, nothing is committed, the consumer seeks back to the batch's first
  offsets and the batch is retried with back-off; a commit that fails (the group moved on: the
  broker restarted, a rebalance) is logged, never fatal: the batch may come again and is skipped;
- SIGTERM/SIGINT finish the current batch, commit, leave the group and exit.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from django.conf import settings
from django.db import close_old_connections
from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[Message]], None]

BATCHES = Counter("kafka_consumer_batches_total", "Batches handled", ["consumer", "result"])
MESSAGES = Counter("kafka_consumer_messages_total", "Messages handled", ["consumer"])
BATCH_SECONDS = Histogram("kafka_consumer_batch_seconds", "Time to handle one batch", ["consumer"])


def topic(name: str) -> str:
    return f"{settings.KAFKA_TOPIC_PREFIX}.{name}"


# --- producing ------------------------------------------------------------------------------


_PRODUCER_STATE_ERRORS = {
    KafkaError.PRODUCER_FENCED,  # seen on tansu under load, not flagged fatal
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.UNKNOWN_PRODUCER_ID,  # the broker restarted with memory storage
    KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
}


class ProduceFailed(Exception):
    """The broker did not acknowledge in time (or refused): nothing may count as sent."""


_producer: Producer | None = None
_producer_lock = threading.Lock()


def producer_config(**overrides: Any) -> dict[str, Any]:
    config = {
        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        # librdkafka keeps retrying this long; request paths stop *waiting* after
        # KAFKA_PRODUCE_TIMEOUT_MS. A message delivered after its caller gave up is harmless by design
        # (the checkout consumer serves only requests whose row is still QUEUED).
        "message.timeout.ms": settings.KAFKA_MESSAGE_TIMEOUT_MS,
        "socket.connection.setup.timeout.ms": 1000,
        "reconnect.backoff.max.ms": 1000,
        "error_cb": _log_error,
    }
    config.update(overrides)
    return config


def _log_error(err: KafkaError) -> None:
    log.warning("kafka: %s", err)


def get_producer() -> Producer:
    global _producer
    with _producer_lock:
        if _producer is None:
            _producer = Producer(producer_config())
            _warm_up(_producer)
        return _producer


def _warm_up(producer: Producer, timeout: float = 1.5) -> None:
    """The first produce of an idempotent producer waits for its producer id (~0.5 s measured on
    tansu), longer than a request path may wait. Pay it once, when the producer is created."""
    try:
        producer.produce(topic("warmup"), key=b"warmup", value=b"")
        producer.flush(timeout)
    except (BufferError, KafkaException) as exc:
        log.warning("kafka: producer warm-up failed: %s", exc)


def reset_producer() -> None:
    """Drop the shared producer (after a fatal error such as UNKNOWN_PRODUCER_ID on a restarted broker)."""
    global _producer
    with _producer_lock:
        _producer = None


def ensure_topics(names: Iterable[str], *, partitions: int = 4, timeout: float = 10.0) -> None:
    """Create the topics that do not exist yet (auto-creation on first produce is too slow for a
    request path with a short delivery timeout)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS})
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names if n not in existing]
    if not missing:
        return
    for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        log.info("kafka: created topic %s", name)


def produce_and_wait(
    topic_name: str,
    *,
    key: str,
    value: bytes,
    headers: list[tuple[str, bytes]] | None = None,
    timeout: float | None = None,
) -> tuple[int, int]:
    """Produce one message and wait for the broker's acknowledgement. Returns (partition, offset)."""
    timeout = timeout if timeout is not None else settings.KAFKA_PRODUCE_TIMEOUT_MS / 1000
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        outcome["err"], outcome["msg"] = err, msg
        done.set()

    producer = get_producer()
    try:
        producer.produce(topic_name, key=key, value=value, headers=headers or [], on_delivery=on_delivery)
    except (BufferError, KafkaException) as exc:
        raise ProduceFailed(str(exc)) from exc
    deadline = time.monotonic() + timeout
    while not done.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            producer.poll(min(remaining, 0.05))
        except (KafkaException, SystemError) as exc:  # fatal idempotent-producer state
            reset_producer()
            raise ProduceFailed(str(exc)) from exc
    if not done.is_set():
        raise ProduceFailed("no acknowledgement from the broker in time")
    err = outcome["err"]
    if err is not None:
        if err.fatal() or err.code() in _PRODUCER_STATE_ERRORS:
            reset_producer()  # a fenced or fatal idempotent producer fails every later message
        raise ProduceFailed(str(err))
    msg = outcome["msg"]
    return msg.partition(), msg.offset()


# --- consuming ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsumerSpec:
    name: str
    topics: tuple[str, ...]
    group: str
    handler: BatchHandler
    batch_size: int = 500
    poll_timeout: float = 0.05
    topic_regex: bool = False  # topics given as "^prefix\\..*" patterns
    extra_config: dict[str, Any] = field(default_factory=dict)


REGISTRY: dict[str, ConsumerSpec] = {}


def register_consumer(spec: ConsumerSpec) -> ConsumerSpec:
    if spec.name in REGISTRY and REGISTRY[spec.name] != spec:
        raise ValueError(f"consumer {spec.name!r} registered twice")
    REGISTRY[spec.name] = spec
    return spec


def load_consumers() -> dict[str, ConsumerSpec]:
    """Import every installed app's `consumers` module so its registrations run."""
    from importlib import import_module

    from django.apps import apps

    for app in apps.get_app_configs():
        try:
            import_module(f"{app.name}.consumers")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app.name}.consumers":
                raise
    return REGISTRY


class ConsumerRunner:
    """Polls batches for one `ConsumerSpec` and commits offsets only after the handler succeeded."""

    def __init__(self, spec: ConsumerSpec, **config_overrides: Any):
        self.spec = spec
        self.stopping = threading.Event()
        config = {
            "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": spec.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "error_cb": _log_error,
            **settings.KAFKA_CONSUMER_CONFIG,
            **spec.extra_config,
            **config_overrides,
        }
        self.consumer = Consumer(config)
        self.retry_delay = 0.1

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())

    def run(
        self, *, max_batches: int | None = None, idle_timeout: float | None = None, max_seconds: float | None = None
    ) -> int:
        """Run until stopped. For tests and tools: stop after `max_batches` handled batches, after
        `idle_timeout` s without messages once partitions are assigned, or after `max_seconds`."""
        assigned = threading.Event()
        self.consumer.subscribe(list(self.spec.topics), on_assign=lambda *_: assigned.set())
        handled, started = 0, time.monotonic()
        idle_since = started
        log.info("consumer %s: subscribed to %s as %s", self.spec.name, self.spec.topics, self.spec.group)
        try:
            while not self.stopping.is_set():
                if max_seconds is not None and time.monotonic() - started > max_seconds:
                    break
                batch = self.poll_batch()
                if not batch:
                    if not assigned.is_set():
                        idle_since = time.monotonic()
                    elif idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                        break
                    continue
                idle_since = time.monotonic()
                if self.handle(batch):
                    handled += 1
                if max_batches is not None and handled >= max_batches:
                    break
        finally:
            self.consumer.close()
            close_old_connections()
        return handled

    def poll_batch(self) -> list[Message]:
        messages = self.consumer.consume(self.spec.batch_size, self.spec.poll_timeout)
        good = []
        for msg in messages:
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer %s: %s", self.spec.name, msg.error())
                continue
            good.append(msg)
        return good

    def handle(self, batch: list[Message]) -> bool:
        """Apply one batch; True if it was applied and its offsets committed."""
        close_old_connections()
        started = time.monotonic()
        try:
            self.spec.handler(batch)
        except Exception:
            BATCHES.labels(self.spec.name, "error").inc()
            log.exception("consumer %s: batch of %d failed; will retry", self.spec.name, len(batch))
            self.rewind(batch)
            time.sleep(self.retry_delay)
            self.retry_delay = min(self.retry_delay * 2, 5.0)
            return False
        self.retry_delay = 0.1
        try:
            self.consumer.commit(offsets=next_offsets(batch), asynchronous=False)
        except KafkaException as exc:
            # The group moved on while the batch ran (broker restarted: UNKNOWN_MEMBER_ID; a rebalance:
            # ILLEGAL_GENERATION; broker down). The batch's effects are committed and idempotent, so
            # its messages may come again after the rejoin and are skipped then: never a reason to die.
            BATCHES.labels(self.spec.name, "uncommitted").inc()
            log.warning("consumer %s: offset commit failed (%s); the batch may be redelivered", self.spec.name, exc)
            return True
        BATCHES.labels(self.spec.name, "ok").inc()
        MESSAGES.labels(self.spec.name).inc(len(batch))
        BATCH_SECONDS.labels(self.spec.name).observe(time.monotonic() - started)
        return True

    def rewind(self, batch: list[Message]) -> None:
        """Seek each partition back to the first offset of the failed batch."""
        first: dict[tuple[str, int], int] = {}
        for msg in batch:
            tp = (msg.topic(), msg.partition())
            first[tp] = min(first.get(tp, msg.offset()), msg.offset())
        for (topic_name, partition), offset in first.items():
            try:
                self.consumer.seek(TopicPartition(topic_name, partition, offset))
            except KafkaException as exc:  # partition revoked meanwhile: its new owner replays it
                log.warning("consumer %s: seek failed: %s", self.spec.name, exc)


def next_offsets(batch: Iterable[Message]) -> list[TopicPartition]:
    last: dict[tuple[str, int], int] = {}
    for msg in batch:
        tp = (msg.topic(), msg.partition())
        last[tp] = max(last.get(tp, -1), msg.offset())
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


def header(msg: Message, name: str) -> str | None:
    for key, value in msg.headers() or []:
        if key == name and value is not None:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None
