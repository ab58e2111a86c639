"""Which leg of the event pipeline a payment's confirmation waited in: relay or outbox consumer.

    python bench/pipeline_legs.py [--since-seconds 60] [--slow-ms 1000]

Run it right after `bench/pipeline_latency.py` (or any payments) with the stack's environment. For
every order paid in the last `--since-seconds` and already CONFIRMED it joins three times:
- `paid_at`: the payment (set inside its transaction, so the relay leg also holds the rest of that
  transaction);
- the CreateTime of its `order` event in Kafka (set by the CDC relay's producer when it sent it);
- `confirmed_at`: set by the outbox consumer inside the transaction that applied the event.
It prints p50/p95/max of commit -> Kafka (relay) and Kafka -> CONFIRMED (consumer), and the slow
orders over time, so a stall shows where it happened and when (at the start of a burst, after a
quiet spell, or throughout). It reads the topic with a throw-away consumer group and commits nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from django.conf import settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from orders.models import Order  # noqa: E402


def event_times(topic: str, since_ms: int) -> dict[int, float]:
    """Order id -> CreateTime (s) of its newest event on the topic since `since_ms`."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": f"pipeline-legs-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=5).topics[topic].partitions
    consumer.assign(consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in partitions], timeout=5))
    times: dict[int, float] = {}
    quiet = 0
    while quiet < 10:  # 2 s without a message: the end
        msg = consumer.poll(0.2)
        if msg is None:
            quiet += 1
            continue
        quiet = 0
        if msg.error() or not msg.key():
            continue
        try:
            times[int(msg.key())] = msg.timestamp()[1] / 1000
        except ValueError:
            continue
    consumer.close()
    return times


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    return f"p50 {ordered[len(ordered) // 2]:.0f} p95 {ordered[int(len(ordered) * 0.95)]:.0f} max {ordered[-1]:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--since-seconds", type=float, default=60.0)
    parser.add_argument("--slow-ms", type=float, default=1000.0)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    since = timezone.now() - timedelta(seconds=args.since_seconds)
    orders = Order.objects.filter(paid_at__gte=since, confirmed_at__isnull=False).values_list(
        "pk", "paid_at", "confirmed_at"
    )
    sent = event_times(f"{settings.KAFKA_TOPIC_PREFIX}.events.order", int(since.timestamp() * 1000))
    rows = sorted(
        (paid.timestamp(), (sent[pk] - paid.timestamp()) * 1000, (confirmed.timestamp() - sent[pk]) * 1000)
        for pk, paid, confirmed in orders
        if pk in sent
    )
    if not rows:
        sys.exit("no confirmed order paid in that window has an event on the topic")
    print(f"{len(rows)} orders")
    print("commit -> Kafka (relay):        " + percentiles([r[1] for r in rows]))
    print("Kafka -> CONFIRMED (consumer):  " + percentiles([r[2] for r in rows]))
    print("commit -> CONFIRMED:            " + percentiles([r[1] + r[2] for r in rows]))
    slow = [r for r in rows if r[1] + r[2] > args.slow_ms]
    print(f"slower than {args.slow_ms:.0f} ms: {len(slow)} (seconds after the first payment, relay, consumer)")
    start = rows[0][0]
    for paid, relay, consumer in slow[:: max(1, len(slow) // 20)]:
        print(f"  t+{paid - start:7.2f} s  relay {relay:7.0f}  consumer {consumer:7.0f} ms")
    if args.out:
        Path(args.out).write_text(json.dumps({"orders": len(rows), "rows": rows}))


if __name__ == "__main__":
    main()
