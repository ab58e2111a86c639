"""The real outbox processes in tests: `manage.py outbox_relay` and `manage.py run_consumer outbox` run
as child processes against the test database, on Kafka topics and consumer groups of the test's own.

    @pytest.mark.slow
    def test_something(outbox_processes):  # the fixture: outbox/tests/conftest.py
        start_both(outbox_processes)
        ...  # write in committed transactions, then wait_until(...) for the effects

The fixture needs `transactional_db` (the children only see committed rows) and sets this process's
KAFKA_TOPIC_PREFIX / KAFKA_GROUP_PREFIX to the children's, so `common.kafka.topic()` here names the
topics they use. Every process it started is stopped at teardown (SIGTERM, then SIGKILL).

`Writer` commits CouponIssued events at a given rate; their effect (one stored SSE event each, written
by the consumer after its inbox transaction committed) is what `applied()` counts.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connection, transaction
from django_eventstream.models import Event as SseEvent

from outbox.models import RelayCheckpoint
from outbox.services import outbox_enqueue
from tests.support.processes import Child, Children, child_env, manage_command
from tests.support.sse import stored_payload
from tests.support.waiting import poll, wait_until

# The topics our events use; created up front so the consumer is assigned them at once.
EVENT_TOPICS = ("events.order", "events.payment", "events.coupon", "events.dlq", "data-platform")
USERS = 50  # SSE channels user-930000..930049 of the Writer's events, as with real traffic


class OutboxProcesses(Children):
    """The relay(s) and consumer(s) of one test, by name."""

    def __init__(self, *, prefix: str, log_dir: Path):
        super().__init__(log_dir)
        self.prefix = prefix
        self.db_name = connection.settings_dict["NAME"]

    def topic(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def start_relay(self, name: str = "relay", **extra_env: str) -> Child:
        return self.start(name, manage_command("outbox_relay"), child_env(**extra_env))

    def start_consumer(self, name: str = "consumer", **extra_env: str) -> Child:
        return self.start(name, manage_command("run_consumer", "outbox"), child_env(**extra_env))

    def kill(self, name: str) -> None:
        self[name].kill()

    # --- readiness ------------------------------------------------------------------------

    def relay_lock_holder(self) -> int | None:
        """Connection id holding the single-relay lock of the test database (None if free)."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT IS_USED_LOCK(%s)", [f"outbox_relay:{self.db_name}"[:64]])
            return cursor.fetchone()[0]

    def wait_relay_active(self, timeout: float = 20.0) -> None:
        """The relay holds its lock and has a checkpoint: commits from now on are relayed."""

        def active() -> bool:
            for name, child in self.started.items():
                if name.startswith("relay") and not child.alive():
                    pytest.fail(f"{name} exited with {child.returncode}:\n{self.log(name)}")
            return (
                self.relay_lock_holder() is not None
                and RelayCheckpoint.objects.filter(name=RelayCheckpoint.RELAY).exists()
            )

        wait_until(active, timeout=timeout, what="the relay to become active")

    def binlog_connection_id(self, name: str = "relay") -> int | None:
        """The server connection id of the relay's current binlog stream (the relay logs it)."""
        found = re.findall(r"binlog connection id (\d+)", self.log(name, tail=10_000))
        return int(found[-1]) if found else None


@dataclass
class Writer:
    """Commits CouponIssued events, one transaction each, at `rate` per second over `threads`: event n
    is user coupon n, for SSE channel user-930000 + n % USERS (no user rows needed)."""

    count: int
    rate: float
    threads: int = 2
    first: int = 1
    committed_at: dict[int, float] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)

    def run(self) -> None:
        workers = [threading.Thread(target=self._write, args=(n,)) for n in range(self.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert not self.errors, self.errors

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run)
        thread.start()
        return thread

    def _write(self, lane: int) -> None:
        try:
            interval = self.threads / self.rate
            started = time.monotonic()
            for k, n in enumerate(range(self.first + lane, self.first + self.count, self.threads)):
                delay = started + k * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self._commit(n)
                self.committed_at[n] = time.time()
        except BaseException as exc:  # noqa: BLE001 - reported by run()
            self.errors.append(exc)
        finally:
            connection.close()

    def _commit(self, n: int) -> None:
        with transaction.atomic():
            outbox_enqueue(
                aggregate_type="coupon",
                aggregate_id=n % 7,
                event_type="CouponIssued",
                payload={"userCouponId": n, "couponId": n % 7, "userId": 930_000 + n % USERS},
            )

    @property
    def numbers(self) -> set[int]:
        return set(range(self.first, self.first + self.count))


def applied() -> Counter:
    """userCouponId -> how many times its effect happened."""
    rows = SseEvent.objects.filter(channel__startswith="user-930", type="coupon-issued")
    return Counter(stored_payload(row.data)["userCouponId"] for row in rows)


def wait_applied(numbers: set[int], processes: OutboxProcesses, *, timeout: float = 60.0) -> Counter:
    """Wait until the effect of each of these CouponIssued events happened; returns the counts a
    moment later (an effect applied twice would show by then)."""
    seen = poll(applied, until=lambda counts: numbers <= set(counts), timeout=timeout, interval=0.2)
    missing = sorted(numbers - set(seen))
    if missing:
        pytest.fail(
            f"{len(missing)} of {len(numbers)} events not applied after {timeout} s, e.g. {missing[:10]}"
            f"\n{processes.logs()}"
        )
    time.sleep(1.0)  # anything applied twice would show up by now
    return applied()


def start_both(processes: OutboxProcesses) -> None:
    """The consumer and the relay, the relay active and the consumer assigned (a warm-up event went through)."""
    processes.start_consumer()
    processes.start_relay()
    processes.wait_relay_active()
    warm = Writer(count=1, rate=100, threads=1, first=0)  # first message: consumer assigned and running
    warm.run()
    wait_applied({0}, processes, timeout=30)


@dataclass
class Percentiles:
    p50: float
    p95: float
    worst: float

    def __str__(self) -> str:
        return f"p50 {self.p50 * 1000:.0f} ms, p95 {self.p95 * 1000:.0f} ms, max {self.worst * 1000:.0f} ms"


def percentiles(values: list[float]) -> Percentiles:
    ordered = sorted(values)
    return Percentiles(statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)], ordered[-1])
