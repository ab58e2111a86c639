"""How far the checkout consumer got, per partition, for the dashboard's "consumer lag".

The broker's high watermarks cannot be trusted for lag here (tansu reports the last batch's base
offset + 1), so the consumer says itself what it handled: after each batch, per partition, the last
offset, the Kafka timestamp of that message and when it was handled. The recorder's flush thread
writes it to Redis once a second (`live:state:consumer:<name>`). Lag is then shown in seconds:
how long the last handled message had waited in the topic (handled at - its timestamp), and how long
ago that was; the age of the oldest QUEUED request (a database read) covers a consumer that stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message
from django_redis import get_redis_connection

from common.live.recorder import RECORDER, state_key


def progress_record(consumer: str, messages: list[Message]) -> None:
    """Remember the last message handled per partition (memory; flushed within a second)."""
    now = time.time()
    last: dict[tuple[str, int], Message] = {}
    for msg in messages:
        tp = (msg.topic() or "", msg.partition() or 0)
        if tp not in last or msg.offset() > last[tp].offset():
            last[tp] = msg
    for (topic_name, partition), msg in last.items():
        kind, stamp_ms = msg.timestamp()
        stamp = stamp_ms / 1000 if kind != TIMESTAMP_NOT_AVAILABLE else None
        value = json.dumps({"offset": msg.offset(), "messageAt": stamp, "handledAt": now})
        RECORDER.set_state(f"consumer:{consumer}", f"{topic_name}:{partition}", value)


@dataclass(frozen=True)
class PartitionProgress:
    topic: str
    partition: int
    offset: int
    lag_seconds: float | None  # how long the last handled message waited before it was handled
    handled_ago_seconds: float


def progress_read(consumer: str, *, now: float | None = None) -> list[PartitionProgress]:
    raw = get_redis_connection("default").hgetall(state_key(f"consumer:{consumer}"))
    return progress_parse(raw, now=now)


def progress_parse(raw: dict, *, now: float | None = None) -> list[PartitionProgress]:
    now = now if now is not None else time.time()
    found = []
    for field, value in raw.items():
        topic_name, _, partition = (field.decode() if isinstance(field, bytes) else field).rpartition(":")
        data = json.loads(value)
        stamp = data.get("messageAt")
        found.append(
            PartitionProgress(
                topic=topic_name,
                partition=int(partition),
                offset=int(data["offset"]),
                lag_seconds=max(0.0, data["handledAt"] - stamp) if stamp else None,
                handled_ago_seconds=max(0.0, now - data["handledAt"]),
            )
        )
    return sorted(found, key=lambda p: (p.topic, p.partition))
