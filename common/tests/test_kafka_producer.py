"""`produce_and_wait` against the real broker: one wait for many messages, and its reset policy."""

import uuid

import pytest

from common.kafka import OutgoingMessage, ProduceFailed, ensure_topics, get_producer, produce_and_wait


@pytest.fixture
def one_partition_topic():
    name = f"test.producer.{uuid.uuid4().hex[:8]}"
    ensure_topics([name], partitions=1)
    return name


def test_several_messages_are_acknowledged_in_one_wait_and_reported_in_order(one_partition_topic):
    messages = [OutgoingMessage(one_partition_topic, key="k", value=f"m{i}".encode()) for i in range(3)]
    acknowledged = produce_and_wait(*messages, timeout=5)
    assert [partition for partition, _ in acknowledged] == [0, 0, 0]
    first = acknowledged[0][1]
    assert [offset for _, offset in acknowledged] == [first, first + 1, first + 2]


def test_a_refused_message_fails_the_call_but_keeps_the_shared_producer(one_partition_topic):
    producer = get_producer()
    too_large = OutgoingMessage(one_partition_topic, key="k", value=b"x" * 2_000_000)
    with pytest.raises(ProduceFailed):
        produce_and_wait(OutgoingMessage(one_partition_topic, key="k", value=b"fine"), too_large, timeout=5)
    assert producer.stale is None
    assert get_producer() is producer  # a message too large says nothing about the producer
    [(partition, _)] = produce_and_wait(OutgoingMessage(one_partition_topic, key="k", value=b"after"), timeout=5)
    assert partition == 0
