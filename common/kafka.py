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


# Delivery errors after which an idempotent producer is replaced: the broker no longer accepts its
# producer id or sequence numbers, or it could not deliver for `message.timeout.ms`. A restarted
# tansu (memory storage) forgets every producer id: librdkafka 2.11 then bumps its epoch and retries
# UNKNOWN_PRODUCER_ID forever, reporting nothing but _MSG_TIMED_OUT (measured), and its stale id can
# collide with an id the new broker gives another producer (PRODUCER_FENCED or
# OUT_OF_ORDER_SEQUENCE_NUMBER there; tansu does not flag them fatal).
_REPLACE_ON = {
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.UNKNOWN_PRODUCER_ID,
    KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
    KafkaError._MSG_TIMED_OUT,
    KafkaError._FATAL,
}


class ProduceFailed(Exception):
    """The broker did not acknowledge in time (or refused): nothing may count as sent."""


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


@dataclass
class ProducerHealth:
    """What one producer's callbacks told about it; `stale` says why it must not be used any more.

    Kept apart from the producer (whose callbacks hold it) so that a discarded producer is freed at
    once, without waiting for the garbage collector to break a cycle."""

    delivered: bool = False  # the broker acknowledged one of its messages: it holds a producer id
    stale: str | None = None

    def on_error(self, err: KafkaError) -> None:
        _log_error(err)
        if err.fatal():
            self.retire(str(err))
        elif err.code() == KafkaError._ALL_BROKERS_DOWN and self.delivered:
            # The broker may come back without our producer id (tansu keeps none across a restart).
            self.retire("lost every broker connection after it had delivered")

    def on_delivery(self, err: KafkaError | None) -> None:
        if err is None:
            self.delivered = True
        elif err.fatal() or err.code() in _REPLACE_ON:
            self.retire(str(err))

    def retire(self, reason: str) -> None:
        if self.stale is None:
            self.stale = reason
            log.warning("kafka: producer to be replaced: %s", reason)


class GuardedProducer:
    """An idempotent producer that notices when it must be replaced (`stale`): after a fatal error,
    a producer-state or timed-out delivery, or an outage of every broker once it held a producer id.
    Its owner replaces it then; `discard()` makes sure the old one never talks to the broker again."""

    def __init__(self, **overrides: Any):
        self.health = ProducerHealth()
        self._producer = Producer(producer_config(**overrides, error_cb=self.health.on_error))

    @property
    def stale(self) -> str | None:
        return self.health.stale

    def produce(
        self,
        topic_name: str,
        *,
        key: str | bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        """Like `Producer.produce` (raises BufferError when its queue is full, KafkaException)."""
        health = self.health

        def report(err: KafkaError | None, msg: Message) -> None:
            health.on_delivery(err)
            if on_delivery is not None:
                on_delivery(err, msg)

        try:
            self._producer.produce(topic_name, key=key, value=value, headers=headers or [], on_delivery=report)
        except KafkaException as exc:
            if exc.args[0].fatal():
                health.retire(str(exc))
            raise

    def poll(self, timeout: float = 0) -> int:
        try:
            return self._producer.poll(timeout)
        except (KafkaException, SystemError) as exc:  # fatal state; SystemError wraps it from a callback
            self.health.retire(f"{type(exc).__name__}: {exc}")
            raise

    def flush(self, timeout: float) -> int:
        try:
            return self._producer.flush(timeout)
        except (KafkaException, SystemError) as exc:
            self.health.retire(f"{type(exc).__name__}: {exc}")
            raise

    def warm_up(self, timeout: float = 1.5) -> None:
        """The first produce of an idempotent producer waits for its producer id (~0.5 s measured on
        tansu), longer than a request path may wait: pay it once, when the producer is created
        (`timeout` 0: do not wait, the id is requested in the background). A delivered warm-up also
        tells `health` that the producer holds an id."""
        try:
            self.produce(topic("warmup"), key=b"warmup", value=b"")
            if timeout > 0:
                self.flush(timeout)
            else:
                self.poll(0)
        except (BufferError, KafkaException, SystemError) as exc:
            log.warning("kafka: producer warm-up failed: %s", exc)

    def discard(self) -> None:
        """Drop every message it still holds, so a stale producer sends nothing more."""
        try:
            self._producer.purge()
            self._producer.flush(0)  # serve the purged messages' callbacks: their waiters give up
        except (KafkaException, SystemError, RuntimeError) as exc:
            log.warning("kafka: discarding a producer: %s", exc)


_producer: GuardedProducer | None = None
_producer_lock = threading.Lock()


def get_producer() -> GuardedProducer:
    """The process's shared producer; replaced (and the old one discarded) once it went stale. Only
    the first one is warmed up with a wait: a replacement is mostly needed while the broker is
    down or just back, when a request must not wait 1.5 s more before its 503."""
    global _producer
    with _producer_lock:
        replacing = _producer is not None
        if _producer is not None:
            try:
                _producer.poll(0)  # serve error reports that came while it was idle (a broker restart)
            except (KafkaException, SystemError):
                pass  # marked stale
            if _producer.stale:
                _producer.discard()
                _producer = None
        if _producer is None:
            _producer = GuardedProducer()
            _producer.warm_up(timeout=0 if replacing else 1.5)
        return _producer


def reset_producer() -> None:
    """Drop the shared producer (tests; callers that gave up on it)."""
    global _producer
    with _producer_lock:
        if _producer is not None:
            _producer.discard()
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
        producer.produce(topic_name, key=key, value=value, headers=headers, on_delivery=on_delivery)
    except (BufferError, KafkaException) as exc:
        raise ProduceFailed(str(exc)) from exc
    deadline = time.monotonic() + timeout
    while not done.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            producer.poll(min(remaining, 0.05))
        except (KafkaException, SystemError) as exc:  # fatal: the producer is stale, the next call replaces it
            raise ProduceFailed(str(exc)) from exc
    if not done.is_set():
        # Not a reason to replace the producer: a slow broker. A broker that lost our producer id
        # shows as _MSG_TIMED_OUT later, and that report makes the producer stale.
        raise ProduceFailed("no acknowledgement from the broker in time")
    err = outcome["err"]
    if err is not None:
        raise ProduceFailed(str(err))  # a fenced or fatal producer is stale now (see _REPLACE_ON)
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
            "error_cb": self._on_error,
            **settings.KAFKA_CONSUMER_CONFIG,
            **spec.extra_config,
            **config_overrides,
        }
        self.config = config
        self.consumer = Consumer(config)
        self.callbacks: dict[str, Callable] = {}
        self.holds_assignment = False  # was assigned partitions since it was created
        self.brokers_lost = threading.Event()
        self.retry_delay = 0.1
        self.topics_ensured_at = 0.0

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())

    def run(
        self, *, max_batches: int | None = None, idle_timeout: float | None = None, max_seconds: float | None = None
    ) -> int:
        """Run until stopped. For tests and tools: stop after `max_batches` handled batches, after
        `idle_timeout` s without messages once partitions are assigned, or after `max_seconds`."""
        assigned = threading.Event()

        def on_assign(_consumer, partitions: list[TopicPartition]) -> None:
            log.info("consumer %s: assigned %s", self.spec.name, describe(partitions))
            self.holds_assignment = True
            assigned.set()

        def on_revoke(_consumer, partitions: list[TopicPartition]) -> None:
            log.info("consumer %s: revoked %s", self.spec.name, describe(partitions))

        self.callbacks = {"on_assign": on_assign, "on_revoke": on_revoke}
        self.consumer.subscribe(list(self.spec.topics), **self.callbacks)
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

    def _on_error(self, err: KafkaError) -> None:
        _log_error(err)
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.brokers_lost.set()

    def poll_batch(self) -> list[Message]:
        if self.brokers_lost.is_set():
            self.brokers_lost.clear()
            if self.holds_assignment:
                # The broker may come back without our topics (tansu keeps none across a restart), and
                # librdkafka 2.11 crashes (SIGSEGV in its metadata cache: 17 crashes in 23 tansu restarts
                # measured) when it fetches a topic the restarted broker does not know. A new consumer
                # holds no assignment and rejoins the group once the broker is back (0 crashes in 8).
                self.renew("lost every broker connection")
        try:
            messages = self.consumer.consume(self.spec.batch_size, self.spec.poll_timeout)
        except KafkaException as exc:  # never a reason to exit: a fatal consumer is replaced
            log.warning("consumer %s: poll failed: %s", self.spec.name, exc)
            if exc.args[0].fatal():
                self.renew(str(exc))
            else:
                self.stopping.wait(0.5)
            return []
        good = []
        for msg in messages:
            if msg.error():
                if msg.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    self.create_missing_topics()
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer %s: %s", self.spec.name, msg.error())
                continue
            good.append(msg)
        return good

    def renew(self, reason: str) -> None:
        """A new consumer in the same group, without the old one's state (after a fatal error, or once
        every broker was lost). Offsets are committed after each batch: nothing is lost, a batch may
        come again and is skipped by the idempotent handler."""
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("consumer %s: closing the old consumer: %s", self.spec.name, exc)
        self.consumer = Consumer(self.config)
        self.holds_assignment = False
        self.consumer.subscribe(list(self.spec.topics), **self.callbacks)
        log.warning("consumer %s: replaced (%s); rejoining %s", self.spec.name, reason, self.spec.group)

    def create_missing_topics(self) -> None:
        """Subscribed topics that do not exist (a broker restarted with memory storage lost them) are
        created, so the group is assigned them before the first producer recreates them. Not for
        regex subscriptions: they pick up whatever topics appear. At most every 5 s."""
        if self.spec.topic_regex or time.monotonic() - self.topics_ensured_at < 5:
            return
        self.topics_ensured_at = time.monotonic()
        try:
            ensure_topics(self.spec.topics, timeout=5)
        except KafkaException as exc:
            log.warning("consumer %s: could not create its topics: %s", self.spec.name, exc)

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


def describe(partitions: Iterable[TopicPartition]) -> str:
    """'ecommerce.queue.checkout[0,2]' (what the logs and the cluster test read)."""
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return " ".join(f"{name}[{','.join(map(str, sorted(ps)))}]" for name, ps in sorted(by_topic.items())) or "nothing"


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
