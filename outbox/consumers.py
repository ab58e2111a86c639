"""The outbox consumer (`manage.py run_consumer outbox`): applies every `<prefix>.events.*` message once.

Each event's id is recorded in the inbox in the transaction that applies its handler
(`outbox.apply`); a chunk of up to 100 messages of a poll shares one transaction (throughput:
one commit per chunk). If a chunk fails, its messages are applied one by one; a failing message
makes the batch fail: the runner seeks back and retries it with back-off (messages already applied
are skipped by the inbox). After OUTBOX_MAX_ATTEMPTS failures of the same message (at once for a
malformed one) it is copied to the dead-letter topic and stored as a `DeadLetter`, and the batch
moves on. "Database or broker unreachable" counts no attempt: it is retried until they are back.
SSE notifications are stored in the chunk's transaction and published after it (`common.sse.notify`).

Subscribed to the topics of OUTBOX_AGGREGATE_TYPES by name, not by a pattern: a pattern makes
librdkafka fetch the metadata of every topic of the cluster at each refresh and match them all
(measured against a broker holding 3,000 topics: 6 % of a core for the consumer alone with a 2 s
refresh, 0.1 % subscribed by name). A missing topic (a fresh broker, or one without storage that
restarted: tansu here) is created by the runner, as for every consumer subscribed by name. An event
of another aggregate type is applied by the fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from confluent_kafka import Message
from django.conf import settings
from django.utils import timezone

from common.kafka import ConsumerSpec, register_consumer, topic
from outbox.apply import event_apply, events_apply
from outbox.dead_letters import dead_letter_record, is_permanent, is_transient
from outbox.events import Event, MalformedEvent, dead_letter_topic, event_from_message, message_timestamp
from outbox.metrics import CONSUMER_LAG, serve_metrics
from outbox.models import DeadLetter, ProcessedEvent

log = logging.getLogger(__name__)

Coordinates = tuple[str, int, int]


class OutboxBatchHandler:
    """The batch handler. Fast path: a chunk of messages applied in one transaction. If that fails,
    the chunk is applied message by message, and the failing message counted (in memory: a restart
    resets the counts)."""

    chunk = 100

    def __init__(self, consumer: str = ProcessedEvent.OUTBOX_CONSUMER):
        self.consumer = consumer
        self.max_attempts = settings.OUTBOX_MAX_ATTEMPTS
        self.attempts: dict[Coordinates, int] = {}
        self._started = False

    def __call__(self, batch: list[Message]) -> None:
        if not self._started:
            self._started = True
            serve_metrics("OUTBOX_CONSUMER_METRICS_PORT")
        parsed = list(self.parse(batch))
        for start in range(0, len(parsed), self.chunk):
            chunk = parsed[start : start + self.chunk]
            try:
                applied = events_apply([event for _, event in chunk], source="kafka")
            except Exception:  # noqa: BLE001 - find the culprit one message at a time
                log.warning("%s: a chunk of %d failed; applying it message by message", self.consumer, len(chunk))
                for msg, _ in chunk:
                    self.handle(msg)
                continue
            for (msg, _), was_applied in zip(chunk, applied, strict=True):
                if was_applied:
                    observe_lag(msg)

    def parse(self, batch: list[Message]) -> Iterator[tuple[Message, Event]]:
        """The batch's events; a malformed message is dead-lettered at once."""
        skip = dead_letter_topic()
        for msg in batch:
            if msg.topic() == skip:
                continue
            try:
                yield msg, event_from_message(msg)
            except MalformedEvent as exc:
                dead_letter_record(consumer=self.consumer, msg=msg, error=exc, attempts=1)

    def handle(self, msg: Message) -> None:
        """One message in its own transaction; raises (the runner retries the batch) until it failed
        `max_attempts` times, then dead-letters it."""
        coordinates = (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        event: Event | None = None
        try:
            event = event_from_message(msg)
            applied = event_apply(event, source="kafka")
        except Exception as exc:
            if is_transient(exc):
                raise  # database or broker unreachable: retry, count no attempt
            attempts = self.attempts.get(coordinates, 0) + 1
            if attempts < self.max_attempts and not is_permanent(exc):
                self._remember(coordinates, attempts)
                raise  # the runner rewinds the batch and retries it with back-off
            dead_letter_record(consumer=self.consumer, msg=msg, error=exc, attempts=attempts, event=event)
            self.attempts.pop(coordinates, None)
            return
        if self.attempts.pop(coordinates, 0) >= self.max_attempts:
            # It failed to be dead-lettered earlier (e.g. broker down) and has now succeeded.
            DeadLetter.objects.filter(consumer=self.consumer, event_id=event.id, replayed_at__isnull=True).update(
                replayed_at=timezone.now()
            )
        if applied:
            observe_lag(msg)

    def _remember(self, coordinates: Coordinates, attempts: int) -> None:
        if len(self.attempts) > 10_000:  # partitions revoked meanwhile leave stale entries
            self.attempts.clear()
        self.attempts[coordinates] = attempts


def observe_lag(msg: Message) -> None:
    published = message_timestamp(msg)
    if published is not None:
        CONSUMER_LAG.observe(max(0.0, (timezone.now() - published).total_seconds()))


def outbox_consumer_spec() -> ConsumerSpec:
    """The spec for the current settings (tests build one with their own topic and group prefix)."""
    return ConsumerSpec(
        name="outbox",
        topics=tuple(topic(f"events.{aggregate_type}") for aggregate_type in settings.OUTBOX_AGGREGATE_TYPES),
        group=f"{settings.KAFKA_GROUP_PREFIX}-outbox",
        handler=OutboxBatchHandler(),
        batch_size=500,
        extra_config={
            # notice within seconds that a restarted broker knows the topics again (see the runner)
            "topic.metadata.refresh.interval.ms": 5_000,
            "fetch.wait.max.ms": settings.OUTBOX_FETCH_WAIT_MAX_MS,
        },
    )


register_consumer(outbox_consumer_spec())
