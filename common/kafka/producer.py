"""The process's shared idempotent producer, and `produce_and_wait`: the one way to send messages and
wait for the broker's acknowledgement (the queue's requests, the outbox's publications and dead
letters). The relay keeps a producer of its own (`GuardedProducer`) and never waits per message."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from django.conf import settings

from common.kafka.topics import topic

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to produce."""

    topic: str
    key: str | bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


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
        "error_cb": log_error,
    }
    config.update(overrides)
    return config


def log_error(err: KafkaError) -> None:
    log.warning("kafka: %s", err)


@dataclass
class ProducerHealth:
    """What one producer's callbacks told about it; `stale` says why it must not be used any more.

    Kept apart from the producer (whose callbacks hold it) so that a discarded producer is freed at
    once, without waiting for the garbage collector to break a cycle."""

    delivered: bool = False  # the broker acknowledged one of its messages: it holds a producer id
    stale: str | None = None

    def on_error(self, err: KafkaError) -> None:
        log_error(err)
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


def produce_and_wait(*messages: OutgoingMessage, timeout: float | None = None) -> list[tuple[int, int]]:
    """Produce `messages` on the shared producer and wait, once for all of them, until the broker
    acknowledged every one. Returns their (partition, offset), in order. Raises ProduceFailed
    otherwise: then none may count as sent, although any may still arrive later (the receivers
    allow for it: the checkout consumer serves only requests still QUEUED, outbox messages carry
    `eventId`). `timeout` (default KAFKA_PRODUCE_TIMEOUT_MS) bounds the wait, not librdkafka's
    retries (KAFKA_MESSAGE_TIMEOUT_MS).

    The one reset policy: a caller never drops the shared producer. A producer that must not be
    used any more retires itself (`GuardedProducer`: a fatal error, a producer-state or timed-out
    delivery, every broker lost after it delivered) and the next `get_producer` replaces it. A wait
    that ran out is no reason (a slow broker; a broker that forgot our producer id shows later as
    _MSG_TIMED_OUT, which retires it), nor is any other delivery error (a message too large, a
    purged message): `reset_producer` would discard whichever producer is current, maybe a fresh
    one, with every other thread's messages in it. A produce that raises (the local queue full)
    fails at once, without waiting for what this call queued before it.
    """
    if not messages:
        return []
    timeout = timeout if timeout is not None else settings.KAFKA_PRODUCE_TIMEOUT_MS / 1000
    reports: list[tuple[KafkaError | None, Message] | None] = [None] * len(messages)
    outstanding = [len(messages)]
    lock, done = threading.Lock(), threading.Event()

    def on_delivery_of(index: int) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:  # on whichever thread polls
            with lock:
                reports[index] = (err, msg)
                outstanding[0] -= 1
                if outstanding[0] == 0:
                    done.set()

        return on_delivery

    producer = get_producer()
    try:
        for index, message in enumerate(messages):
            producer.produce(
                message.topic,
                key=message.key,
                value=message.value,
                headers=message.headers,
                on_delivery=on_delivery_of(index),
            )
    except (BufferError, KafkaException) as exc:
        raise ProduceFailed(str(exc)) from exc
    deadline = time.monotonic() + timeout
    while not done.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            producer.poll(min(remaining, 0.05))
        except (KafkaException, SystemError) as exc:  # fatal: the producer retired itself
            raise ProduceFailed(str(exc)) from exc
    if not done.is_set():
        raise ProduceFailed(
            f"no acknowledgement from the broker in time ({outstanding[0]} of {len(messages)} message(s))"
        )
    errors = [report[0] for report in reports if report is not None and report[0] is not None]
    if errors:
        raise ProduceFailed(str(errors[0]))  # a fenced or fatal producer is stale now (see _REPLACE_ON)
    return [(report[1].partition(), report[1].offset()) for report in reports if report is not None]
