"""How long the first messages after an idle spell wait for a paused consumer, on a busy machine.

    python bench/idle_wakeup.py [--burners 3] [--rate 200] [--messages 1000] [--runs 3]

Each run creates a topic of 4 partitions and starts a `ConsumerRunner` on it (in this process, with
the stack's settings: `KAFKA_IDLE_AFTER_SECONDS`, `KAFKA_IDLE_FETCH_INTERVAL_MS`), waits until its
`FetchPacer` has paused the partitions, starts `--burners` busy loops (separate processes, so the
machine is as loaded as during a burst of payments), and produces `--messages` messages at
`--rate`, each carrying its send time, and prints p50/p95/max of send -> handler per run. This is
the measurement behind the wake-up in `FetchPacer.resume`: without it, probes came back empty
while the topic filled (see its docstring). Needs the broker of `make services`; creates
throw-away topics and groups.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from common.kafka import (  # noqa: E402
    REGISTRY,
    ConsumerRunner,
    ConsumerSpec,
    OutgoingMessage,
    ensure_topics,
    produce_and_wait,
    register_consumer,
)


def burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def one_run(*, burners: int, rate: float, messages: int) -> dict:
    name = f"bench-wakeup-{uuid.uuid4().hex[:8]}"
    topic = f"bench.{name}"
    ensure_topics([topic], partitions=4)
    waits: list[float] = []

    def handler(batch) -> None:
        now = time.time()
        waits.extend(now - float(msg.value()) for msg in batch)

    register_consumer(ConsumerSpec(name=name, topics=(topic,), group=f"{name}-group", handler=handler))
    runner = ConsumerRunner(REGISTRY[name])
    worker = threading.Thread(target=runner.run, kwargs={"max_seconds": 300})
    worker.start()
    load = [multiprocessing.Process(target=burn, args=(messages / rate + 15,)) for _ in range(burners)]
    try:
        deadline = time.monotonic() + 60
        while not runner.pacer.paused and time.monotonic() < deadline:
            time.sleep(0.05)
        if not runner.pacer.paused:
            raise SystemExit("the consumer never paused: is KAFKA_IDLE_AFTER_SECONDS 0?")
        time.sleep(1.0)  # a few idle checks
        for process in load:
            process.start()
        started = time.monotonic()
        for n in range(messages):
            produce_and_wait(OutgoingMessage(topic, key=str(n), value=repr(time.time()).encode()), timeout=5)
            time.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
        deadline = time.monotonic() + 30
        while len(waits) < messages and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.stopping.set()
        worker.join(timeout=30)
        for process in load:
            process.terminate()
        REGISTRY.pop(name, None)
    ordered = sorted(waits)
    if len(ordered) < messages:
        raise SystemExit(f"only {len(ordered)} of {messages} messages arrived within 30 s")
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[int(len(ordered) * 0.95)] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burners", type=int, default=3, help="busy loops beside the producer")
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.burners} busy loops, {args.rate:g} messages/s")
    for run in range(1, args.runs + 1):
        result = one_run(burners=args.burners, rate=args.rate, messages=args.messages)
        print(
            f"run {run}: send -> handler p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms,"
            f" max {result['max_ms']} ms"
        )


if __name__ == "__main__":
    main()
