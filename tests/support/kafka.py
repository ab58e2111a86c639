"""Kafka in tests: short consumer-group timings and reading a topic from its start.

A test gets topics and consumer groups of its own with the `private_kafka` fixture (fixtures.py).
"""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

# For every consumer a test starts, in this process or in a child: a new group's first assignment
# takes half the session timeout on tansu, so a (re)joining consumer gets its partitions in a second.
FAST_GROUP = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500}


def read_topic(topic_name: str, *, expect: int, timeout: float = 10.0) -> list[Message]:
    """Every message of `topic_name` from the beginning (no consumer group): waits up to `timeout` s
    for `expect` of them, then a moment more for any beyond those (which a test may assert are not
    there)."""
    from django.conf import settings

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
