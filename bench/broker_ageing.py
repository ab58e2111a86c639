"""How the broker's cost per request grows with the record batches it holds (tansu's memory storage).

    python bench/broker_ageing.py [--steps 0,5000,10000,20000] [--partitions 4]

On a throw-away topic of the project's broker (`KAFKA_BOOTSTRAP_SERVERS`), it produces messages
one per record batch (as the CDC relay sends events at tens a second) up to each step, and then
measures the broker's CPU, from /proc by the pid file under $RUN_DIR:
- a ListOffsets lookup (`get_watermark_offsets(cached=False)`), per partition;
- a consumer standing at the end and fetching every 10 ms (`fetch.wait.max.ms=10`), % of a core;
- one event produced and consumed before the next one, per event.
Run it on a quiet machine. The topic stays on the broker: restart it afterwards (`make down && make up`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from django.conf import settings  # noqa: E402

from common.kafka.topics import ensure_topics  # noqa: E402


class Broker:
    def __init__(self, run_dir: str):
        self.pid = int(Path(run_dir, "tansu", "tansu.pid").read_text())
        self.hz = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.hz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="0,5000,10000,20000", help="messages held, in total over the partitions")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--run-dir", default=os.environ.get("RUN_DIR", str(ROOT / ".run")))
    args = parser.parse_args()
    broker = Broker(args.run_dir)
    topic = f"bench.ageing.{uuid.uuid4().hex[:8]}"
    ensure_topics([topic], partitions=args.partitions)
    bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-probe", "fetch.wait.max.ms": 10})
    partitions = [TopicPartition(topic, p) for p in range(args.partitions)]

    def send(n: int, first: int) -> None:
        for i in range(first, first + n):
            producer.produce(topic, value=b'{"probe": 1}', partition=i % args.partitions)
            producer.flush()  # one message per batch

    held = 0
    print(f"topic {topic}, {args.partitions} partitions")
    print("| messages held | ListOffsets, ms per partition | idle consumer at the end, % of a core | one event, ms |")
    print("|---:|---:|---:|---:|")
    for step in (int(s) for s in args.steps.split(",")):
        send(step - held, held)
        held = step
        started = broker.cpu_seconds()
        for _ in range(50):
            for tp in partitions:
                consumer.get_watermark_offsets(tp, timeout=5, cached=False)
        lookup = (broker.cpu_seconds() - started) * 1000 / (50 * len(partitions))
        ends = [consumer.get_watermark_offsets(tp, timeout=5, cached=False)[1] for tp in partitions]
        consumer.assign([TopicPartition(topic, p, end) for p, end in enumerate(ends)])
        consumer.poll(1.0)
        started, until = broker.cpu_seconds(), time.monotonic() + 3
        while time.monotonic() < until:
            consumer.poll(0.1)
        idle = (broker.cpu_seconds() - started) * 100 / 3
        started = broker.cpu_seconds()
        for i in range(200):
            producer.produce(topic, value=b'{"probe": 1}', partition=i % args.partitions)
            producer.flush()
            msg = None
            while msg is None or msg.error():
                msg = consumer.poll(1.0)
        per_event = (broker.cpu_seconds() - started) * 1000 / 200
        held += 200
        consumer.unassign()
        print(f"| {held:,} | {lookup:.2f} | {idle:.1f} | {per_event:.2f} |")
    consumer.close()


if __name__ == "__main__":
    main()
