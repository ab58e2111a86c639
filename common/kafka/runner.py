"""The loop that runs any registered consumer (`ConsumerRunner`), and helpers for consumed messages.
The runner's contract with a handler is in the package docstring (`common.kafka`)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from django.conf import settings
from django.db import close_old_connections
from prometheus_client import Counter, Histogram

from common.kafka.producer import log_error
from common.kafka.registry import ConsumerSpec
from common.kafka.topics import ensure_topics

log = logging.getLogger(__name__)

BATCHES = Counter("kafka_consumer_batches_total", "Batches handled", ["consumer", "result"])
MESSAGES = Counter("kafka_consumer_messages_total", "Messages handled", ["consumer"])
BATCH_SECONDS = Histogram("kafka_consumer_batch_seconds", "Time to handle one batch", ["consumer"])


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
            "enable.partition.eof": True,  # FetchPacer.check reads them; poll_batch drops them
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
        self.pacer = FetchPacer(
            idle_after=settings.KAFKA_IDLE_AFTER_SECONDS,
            check_every=settings.KAFKA_IDLE_FETCH_INTERVAL_MS / 1000,
            fetch_wait=int(config.get("fetch.wait.max.ms", 500)) / 1000,
            from_earliest=config["auto.offset.reset"] in ("earliest", "smallest", "beginning"),
        )

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
            self.pacer.assignment_changed()
            assigned.set()

        def on_revoke(_consumer, partitions: list[TopicPartition]) -> None:
            log.info("consumer %s: revoked %s", self.spec.name, describe(partitions))
            self.pacer.assignment_changed(revoked=partitions)

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
        log_error(err)
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
            messages = self.pacer.poll(self.consumer, self.spec.batch_size, self.spec.poll_timeout)
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
        self.pacer.reset()
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
        self.pacer.rewound(first)


class FetchPacer:
    """Polls a consumer: at once when a message is there, and without fetching continuously while
    nothing arrives.

    `Consumer.consume(n, timeout)` returns only when it has n messages or the timeout ran out (it
    waited the whole timeout for a single message: measured); `poll` returns the first message as
    soon as it is there, and `consume(n - 1, 0)` adds what was fetched with it.

    A subscribed librdkafka consumer fetches all the time, and tansu holds an empty fetch for the
    full `fetch.wait.max.ms`: the short wait that latency needs (a message that arrives during a
    fetch waits for its end) costs 1000/wait fetches a second per consumer while idle (with 10 ms,
    5-8 % of a core of the broker per consumer, measured). So after `idle_after` s without a
    message the assigned partitions are paused (no fetch at all), and every `check_every` s they
    are resumed for one fetch (`check`): a message arrives (fetching is continuous again), or the
    fetch comes back without one and they are paused again. A message that arrives while idle thus
    waits up to about `check_every`.

    librdkafka 2.11 details this relies on (measured):
    - pausing drops what was fetched and not yet polled, and resumes from the last position polled
      by the application, but where it polled nothing since the assignment it resumes from where it
      had *fetched* to, skipping what it dropped (messages were lost that way). So every resume
      seeks each partition to the position this pacer knows: after the last message it returned,
      or else the committed offset (without one, the earliest offset), asked once per assignment;
      the runner tells it of a rewind;
    - a resumed partition starts fetching only at the broker thread's next wake-up, up to a second
      later, and neither the resume nor a seek wakes it: when nothing else does, the probe ends and
      pauses the partitions again before that fetch goes out (the pause drops it). On a quiet
      machine something else usually wakes it in time; under CPU load it did not: after a cold
      start at 200 payments/s the outbox consumer's probes came back empty for 9 s while its topic
      filled, and payments waited 7 s at p95 to be CONFIRMED. A request through that broker
      connection wakes it, so each resume ends with a metadata request for one assigned topic
      (0.1 ms of the broker's CPU; a ListOffsets request would also tell whether data arrived, but
      tansu's costs CPU in proportion to the partition's size: 3 ms for 4 partitions of 2,000
      messages). `bench/idle_wakeup.py` (3 busy loops beside a producer of 200 messages/s): p50
      11.3 s before, 6-7 ms with it (p95 0.23-0.35 s: what arrives before the next check waits);
    - an empty fetch shows as the end-of-partition events of its answer (`enable.partition.eof`,
      emitted again after each seek), but only for partitions whose last batch held one message
      (tansu reports as high watermark the last batch's base offset + 1), so a check also ends
      after `probe` s, the time a fetch with data takes to come back (10-20 ms here).
    - a partition can go on past the position the application stands at, skipping messages it had
      fetched: after a resume whose seek did not take, and during a cooperative rebalance, on a
      partition the consumer *kept* (measured in the cluster test: the message at offset 92 of two
      retained partitions never reached the application while the group moved other partitions to
      a new member; the fallback applied their events 57 s later). So `accept` checks every
      message against the position it knows (kept across a rebalance for the partitions that were
      not revoked; for newly assigned ones, their committed offset, asked once) and seeks a
      partition that skipped back to it: a skip costs a refetch, never a message.
    """

    def __init__(self, *, idle_after: float, check_every: float, fetch_wait: float, from_earliest: bool = True):
        self.idle_after = idle_after
        self.from_earliest = from_earliest  # auto.offset.reset: where a partition without a commit starts
        self.check_every = check_every
        self.probe = max(0.05, 3 * fetch_wait)
        self.paused = False
        self.rebalanced = False
        self.last_message_at = time.monotonic()
        self.next_check_at = 0.0
        self.positions: dict[tuple[str, int], int] = {}  # next offset the application needs
        self.expected: dict[tuple[str, int], int] = {}  # where a resumed partition must go on (see accept)
        self.sought_back: set[tuple[str, int]] = set()

    def poll(self, consumer: Consumer, batch_size: int, timeout: float) -> list[Message]:
        """A batch: messages, and events (errors, ends of partitions) for the caller to look at."""
        if self.rebalanced:  # newly assigned partitions are not paused: fetch them all for a while
            self.rebalanced = False
            if self.paused:
                self.resume(consumer)  # the kept ones from where the application stands
                self.last_message_at = time.monotonic()
            self.learn_positions(consumer)
        if self.paused:
            wait = self.next_check_at - time.monotonic()
            if wait <= 0:
                return self.check(consumer, batch_size)
            timeout = min(timeout, wait)
        first = consumer.poll(timeout)  # while paused: nothing, or from a newly assigned partition
        messages = self.accept(consumer, [] if first is None else [first, *consumer.consume(batch_size - 1, 0)])
        now = time.monotonic()
        if any(msg.error() is None for msg in messages):
            self.last_message_at = now
            if self.paused:
                self.resume(consumer)
        elif not self.paused and self.idle_after > 0 and now - self.last_message_at >= self.idle_after:
            self.pause(consumer)
        return messages

    def check(self, consumer: Consumer, batch_size: int) -> list[Message]:
        """One fetch while idle: resumed until a message, the answer of an empty fetch or `probe` s,
        then paused again."""
        self.resume(consumer)
        events: list[Message] = []
        deadline = time.monotonic() + self.probe
        while (remaining := deadline - time.monotonic()) > 0:
            msg = consumer.poll(remaining)
            if msg is None:
                continue
            if msg.error() is None:  # data: fetching stays continuous
                batch = self.accept(consumer, [*events, msg, *consumer.consume(batch_size - 1, 0)])
                self.last_message_at = time.monotonic()
                return batch
            events.append(msg)
            if msg.error().code() == KafkaError._PARTITION_EOF:  # a fetch came back: take the rest of it
                deadline = min(deadline, time.monotonic() + 0.002)
        self.pause(consumer)
        return events

    def accept(self, consumer: Consumer, messages: list[Message]) -> list[Message]:
        """Remember where the application stands, and hold back what would skip a message.

        Each message must be the one at the position the application stands at (after a resume, the
        one the pacer sought it to); an earlier one is a redelivery and is taken. A later one means
        the consumer skipped messages (see the class docstring): that partition's messages are left
        out of this batch and it is sought back, so they come again in order. Offsets on our topics
        are contiguous (no transactions, no compaction), but a second gap in a row is accepted
        rather than looping."""
        accepted: list[Message] = []
        held_back: set[tuple[str, int]] = set()
        for msg in messages:
            if msg.error() is not None:
                accepted.append(msg)
                continue
            tp = (msg.topic(), msg.partition())
            if tp in held_back:
                continue
            expected = self.expected.pop(tp, None)
            if expected is None:
                expected = self.positions.get(tp)
            if expected is not None and msg.offset() > expected and tp not in self.sought_back:
                log.warning(
                    "consumer: %s [%d] went on at offset %d, not %d; seeking back",
                    tp[0],
                    tp[1],
                    msg.offset(),
                    expected,
                )
                held_back.add(tp)
                self.sought_back.add(tp)
                self.expected[tp] = expected
                try:
                    consumer.seek(TopicPartition(tp[0], tp[1], expected))
                except KafkaException as exc:
                    log.warning("consumer: seek of %s [%d] failed: %s", tp[0], tp[1], exc)
                continue
            self.sought_back.discard(tp)
            self.positions[tp] = msg.offset() + 1
            accepted.append(msg)
        return accepted

    def rewound(self, offsets: dict[tuple[str, int], int]) -> None:
        """The runner sought these partitions back (a failed batch is retried from there)."""
        self.positions.update(offsets)
        for tp in offsets:
            self.expected.pop(tp, None)

    def learn_positions(self, consumer: Consumer) -> bool:
        """Where each assigned partition the application polled nothing from stands: its committed
        offset (without one, the earliest offset). False if the broker could not say."""
        unknown = [tp for tp in consumer.assignment() if (tp.topic, tp.partition) not in self.positions]
        if not unknown:
            return True
        try:
            for tp in consumer.committed(unknown, timeout=5):
                if tp.offset >= 0:
                    self.positions.setdefault((tp.topic, tp.partition), tp.offset)
                elif self.from_earliest:  # no commit: it started at the earliest offset and polled nothing
                    low, _high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
                    self.positions.setdefault((tp.topic, tp.partition), low)
        except KafkaException as exc:
            log.warning("consumer: where it stands is unknown (%s)", exc)
            return False
        return True

    def pause(self, consumer: Consumer) -> None:
        partitions = consumer.assignment()
        if not partitions:
            return
        if not self.learn_positions(consumer):  # a resume could not seek them: keep fetching
            self.last_message_at = time.monotonic()
            return
        consumer.pause(partitions)
        self.paused, self.next_check_at = True, time.monotonic() + self.check_every

    def resume(self, consumer: Consumer) -> None:
        """Resume every assigned partition from where the application stands, and wake the broker
        thread that fetches them (see the class docstring)."""
        self.paused = False
        partitions = consumer.assignment()
        if not partitions:
            return
        consumer.resume(partitions)
        for tp in partitions:
            position = self.positions.get((tp.topic, tp.partition))
            if position is None or position < 0:  # only to a known offset: a logical one is looked up each time
                continue
            self.expected[(tp.topic, tp.partition)] = position
            try:
                consumer.seek(TopicPartition(tp.topic, tp.partition, position))
            except KafkaException as exc:  # not fetching yet (its start offset is being looked up): nothing dropped
                log.info("consumer: seek of %s [%d] failed: %s", tp.topic, tp.partition, exc)
        try:  # wakes librdkafka's broker thread, so the fetch goes out now (see the class docstring)
            consumer.list_topics(partitions[0].topic, timeout=1.0)
        except KafkaException as exc:
            log.info("consumer: metadata request failed: %s", exc)

    def assignment_changed(self, revoked: Iterable[TopicPartition] = ()) -> None:
        """From the rebalance callbacks, inside `Consumer.poll`: what this consumer knows of revoked
        partitions is forgotten at once (another member may move them on); the partitions it keeps
        keep their positions (a cooperative rebalance does not stop them). The next poll does the
        rest."""
        self.rebalanced = True
        for tp in revoked:
            key = (tp.topic, tp.partition)
            self.positions.pop(key, None)
            self.expected.pop(key, None)
            self.sought_back.discard(key)

    def reset(self) -> None:
        """A new consumer: nothing paused, nothing known."""
        self.paused = self.rebalanced = False
        self.positions.clear()
        self.expected.clear()
        self.sought_back.clear()
        self.last_message_at = time.monotonic()


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
