"""The generic consumer runner against the real broker: offsets move only after the handler's
transaction committed."""

import random
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from django.conf import settings
from django.db import transaction

from common.kafka import (
    REGISTRY,
    ConsumerRunner,
    ConsumerSpec,
    OutgoingMessage,
    ensure_topics,
    produce_and_wait,
    register_consumer,
)
from common.kafka.runner import FetchPacer
from outbox.models import ProcessedEvent
from outbox.services import inbox_claim
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

FAST = {"session.timeout.ms": 3000, "heartbeat.interval.ms": 500}


def committed_offset(topic: str, group: str) -> int:
    probe = Consumer({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS, "group.id": group})
    try:
        (tp,) = probe.committed([TopicPartition(topic, 0)], timeout=10)
        return tp.offset
    finally:
        probe.close()


def make_spec(handler):
    name = f"test-{uuid.uuid4().hex[:8]}"
    topic = f"test.runner.{name}"
    spec = register_consumer(ConsumerSpec(name=name, topics=(topic,), group=f"{name}-group", handler=handler))
    ensure_topics([topic], partitions=1)
    return spec, topic


def record(batch):
    with transaction.atomic():
        for msg in batch:
            inbox_claim(consumer="runner-test", event_id=msg.value().decode())


def test_registered_consumer_receives_a_real_message_and_commits_after_its_transaction():
    spec, topic = make_spec(record)
    try:
        produce_and_wait(OutgoingMessage(topic, key="k", value=b"event-1"), timeout=5)
        produce_and_wait(OutgoingMessage(topic, key="k", value=b"event-2"), timeout=5)
        runner = ConsumerRunner(REGISTRY[spec.name], **FAST)
        runner.run(idle_timeout=1.0, max_seconds=20)
        assert sorted(ProcessedEvent.objects.values_list("event_id", flat=True)) == ["event-1", "event-2"]
        assert committed_offset(topic, spec.group) == 2
    finally:
        REGISTRY.pop(spec.name, None)


def test_failing_handler_commits_nothing_and_the_batch_is_redelivered():
    calls = []

    def flaky(batch):
        calls.append([m.value() for m in batch])
        with transaction.atomic():
            for msg in batch:
                inbox_claim(consumer="runner-test", event_id=msg.value().decode())
            if len(calls) == 1:
                raise RuntimeError("database write failed")  # rolls the inbox rows back

    spec, topic = make_spec(flaky)
    try:
        produce_and_wait(OutgoingMessage(topic, key="k", value=b"only-event"), timeout=5)
        runner = ConsumerRunner(REGISTRY[spec.name], **FAST)
        runner.run(max_batches=1, max_seconds=20)  # the failed attempt is not counted as handled
        assert calls == [[b"only-event"], [b"only-event"]]  # redelivered after the rewind
        assert list(ProcessedEvent.objects.values_list("event_id", flat=True)) == ["only-event"]
        assert committed_offset(topic, spec.group) == 1
    finally:
        REGISTRY.pop(spec.name, None)


def test_uncommitted_batch_is_seen_again_by_the_next_consumer():
    def explode(batch):
        raise RuntimeError("crash before commit")

    spec, topic = make_spec(explode)
    try:
        produce_and_wait(OutgoingMessage(topic, key="k", value=b"survivor"), timeout=5)
        runner = ConsumerRunner(REGISTRY[spec.name], **FAST)
        runner.retry_delay = 0.05
        runner.run(max_seconds=5.0)  # keeps failing and rewinding; never commits
        assert committed_offset(topic, spec.group) < 0  # nothing committed
        REGISTRY[spec.name] = ConsumerSpec(name=spec.name, topics=spec.topics, group=spec.group, handler=record)
        ConsumerRunner(REGISTRY[spec.name], **FAST).run(max_batches=1, max_seconds=20)
        assert list(ProcessedEvent.objects.values_list("event_id", flat=True)) == ["survivor"]
        assert committed_offset(topic, spec.group) == 1
    finally:
        REGISTRY.pop(spec.name, None)


def test_an_idle_consumer_stops_fetching_continuously_and_still_gets_every_message(settings):
    """After KAFKA_IDLE_AFTER_SECONDS without messages the runner pauses its partitions (no fetch at
    all) but fetches once every KAFKA_IDLE_FETCH_INTERVAL_MS: what arrives meanwhile is delivered, in
    order, and fetching is continuous again."""
    settings.KAFKA_IDLE_AFTER_SECONDS = 0.3
    settings.KAFKA_IDLE_FETCH_INTERVAL_MS = 100
    got: list[bytes] = []
    spec, topic = make_spec(lambda batch: got.extend(msg.value() for msg in batch))
    runner = ConsumerRunner(REGISTRY[spec.name], **FAST)
    worker = threading.Thread(target=runner.run, kwargs={"max_seconds": 60})
    worker.start()
    try:
        # idle before anything was committed (a new group), then after
        wait_until(lambda: runner.pacer.paused, timeout=20, what="the new consumer to pause")
        produce_and_wait(OutgoingMessage(topic, key="k", value=b"1"), timeout=5)
        wait_until(lambda: got == [b"1"], timeout=10, what="the first message")
        wait_until(lambda: runner.pacer.paused, timeout=10, what="the idle consumer to pause")

        produce_and_wait(*(OutgoingMessage(topic, key="k", value=str(n).encode()) for n in (2, 3, 4)), timeout=5)

        wait_until(lambda: len(got) == 4, timeout=10, what="the messages sent while it was paused")
        assert got == [b"1", b"2", b"3", b"4"]
    finally:
        runner.stopping.set()
        worker.join(timeout=30)
        REGISTRY.pop(spec.name, None)
    assert committed_offset(topic, spec.group) == 4


def test_nothing_is_lost_while_an_idle_consumer_pauses_and_resumes(settings):
    """Messages trickling into partitions it has not read since it was assigned, while it pauses
    and resumes: librdkafka drops what a pause catches in flight and resumes such a partition from
    where it had fetched to, so the runner seeks it back (FetchPacer); every message arrives, once."""
    settings.KAFKA_IDLE_AFTER_SECONDS = 0.2
    settings.KAFKA_IDLE_FETCH_INTERVAL_MS = 100
    got: list[bytes] = []
    name = f"test-{uuid.uuid4().hex[:8]}"
    topic = f"test.runner.{name}"
    ensure_topics([topic], partitions=4)
    handler = lambda batch: got.extend(msg.value() for msg in batch)  # noqa: E731
    spec = register_consumer(ConsumerSpec(name=name, topics=(topic,), group=f"{name}-group", handler=handler))
    runner = ConsumerRunner(REGISTRY[spec.name], **FAST)
    worker = threading.Thread(target=runner.run, kwargs={"max_seconds": 90})
    worker.start()
    sent: list[bytes] = []
    rng = random.Random(7)
    try:
        wait_until(lambda: runner.holds_assignment, timeout=20, what="the assignment")
        for burst in range(12):
            time.sleep(rng.uniform(0.05, 0.6))  # now while it fetches, now while it is paused
            batch = [f"{burst}-{n}".encode() for n in range(rng.randint(1, 3))]
            sent += batch
            produce_and_wait(*(OutgoingMessage(topic, key=v, value=v) for v in batch), timeout=5)
        wait_until(
            lambda: len(got) >= len(sent),
            timeout=20,
            what=f"{len(sent)} messages",
            details=lambda: f"missing {sorted(set(sent) - set(got))}; pacer at {runner.pacer.positions}",
        )
        time.sleep(0.5)  # a duplicate would show up by now
    finally:
        runner.stopping.set()
        worker.join(timeout=30)
        REGISTRY.pop(spec.name, None)
    assert sorted(got) == sorted(sent)


class FakeMessage:
    def __init__(self, partition: int, offset: int):
        self._partition, self._offset = partition, offset

    def error(self):
        return None

    def topic(self):
        return "t"

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset


class SeekRecorder:
    def __init__(self):
        self.sought: list[tuple[str, int, int]] = []

    def seek(self, tp):
        self.sought.append((tp.topic, tp.partition, tp.offset))


def test_a_resumed_partition_that_skips_past_its_position_is_sought_back_once():
    """The guard behind the pacer's seeks: a gap after a resume holds that partition's messages back
    and seeks it to where the application stands; the other partitions go on; a second gap is taken."""
    pacer = FetchPacer(idle_after=1, check_every=1, fetch_wait=0.01)
    consumer = SeekRecorder()
    pacer.expected = {("t", 0): 5, ("t", 1): 7}
    batch = pacer.accept(consumer, [FakeMessage(0, 8), FakeMessage(0, 9), FakeMessage(1, 7), FakeMessage(1, 8)])
    assert [(m.partition(), m.offset()) for m in batch] == [(1, 7), (1, 8)]
    assert consumer.sought == [("t", 0, 5)]
    assert pacer.positions == {("t", 1): 9}
    batch = pacer.accept(consumer, [FakeMessage(0, 5), FakeMessage(0, 6)])  # the refetch, in order
    assert [m.offset() for m in batch] == [5, 6]
    assert pacer.positions[("t", 0)] == 7
    pacer.expected[("t", 0)] = 7
    pacer.sought_back.add(("t", 0))  # it was sought back already: a real gap is accepted
    assert [m.offset() for m in pacer.accept(consumer, [FakeMessage(0, 9)])] == [9]


def test_a_partition_kept_through_a_rebalance_that_skips_a_message_is_sought_back():
    """Measured in the cluster test: during a cooperative rebalance, a partition the consumer kept
    went on one offset past the last message the application had (the event came through the
    fallback a minute later). Positions of kept partitions survive the rebalance, and any message
    past them is held back and its partition sought back; a revoked partition is forgotten (its
    next owner moves it on), so what comes for it after a reassignment is taken as it comes."""
    pacer = FetchPacer(idle_after=1, check_every=1, fetch_wait=0.01)
    consumer = SeekRecorder()
    assert len(pacer.accept(consumer, [FakeMessage(0, 90), FakeMessage(0, 91), FakeMessage(1, 40)])) == 3
    pacer.assignment_changed(revoked=[TopicPartition("t", 1)])
    assert pacer.positions == {("t", 0): 92}
    batch = pacer.accept(consumer, [FakeMessage(0, 93), FakeMessage(0, 94), FakeMessage(1, 55)])
    assert [(m.partition(), m.offset()) for m in batch] == [(1, 55)]
    assert consumer.sought == [("t", 0, 92)]
    batch = pacer.accept(consumer, [FakeMessage(0, 92), FakeMessage(0, 93)])  # the refetch
    assert [m.offset() for m in batch] == [92, 93]
    assert pacer.positions == {("t", 0): 94, ("t", 1): 56}
    assert [m.offset() for m in pacer.accept(consumer, [FakeMessage(0, 93)])] == [93]  # a redelivery is taken


class CallRecorder:
    """The calls a pacer makes on a consumer that holds two partitions of topic "t"."""

    def __init__(self):
        self.calls: list[tuple] = []

    def assignment(self):
        return [TopicPartition("t", 0), TopicPartition("t", 1)]

    def resume(self, partitions):
        self.calls.append(("resume", len(partitions)))

    def seek(self, tp):
        self.calls.append(("seek", tp.partition, tp.offset))

    def list_topics(self, topic, timeout):
        self.calls.append(("metadata", topic))


def test_a_resume_ends_with_a_request_that_wakes_the_broker_thread():
    """Neither the resume nor the seeks wake librdkafka's broker thread (under CPU load the probe
    ended before its fetch went out, again and again); a request through that connection does, so
    it comes after them."""
    pacer = FetchPacer(idle_after=1, check_every=1, fetch_wait=0.01)
    pacer.positions = {("t", 0): 4, ("t", 1): 9}
    pacer.paused = True
    consumer = CallRecorder()
    pacer.resume(consumer)
    assert consumer.calls == [("resume", 2), ("seek", 0, 4), ("seek", 1, 9), ("metadata", "t")]
    assert not pacer.paused
