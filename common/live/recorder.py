"""Live figures for the sale dashboard, recorded in each process at almost no cost per request.

Every request adds to this process's bucket of the current second (counters in a dict under one
lock: per endpoint group, the count, the status class and a fixed latency histogram; per business
refusal code, a count). A daemon thread flushes the finished seconds to Redis every second: one
pipeline of HINCRBY on one hash per second (`live:<epoch second>`) with a TTL, so the figures of
every process (web workers, the checkout consumer) add up in Redis, where the dashboard reads
the last minutes back. Nothing on the request path talks to the network; a Redis outage loses the
figures of those seconds and nothing else. The same thread writes the small state other processes
publish here (the checkout consumer's per-partition progress, `common.live.progress`).

Costs measured by `bench/recorder_cost.py` (see the README, "During a sale").
"""

from __future__ import annotations

import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable

from django.core.cache import caches
from django_redis import get_redis_connection
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# Upper bounds (ms) of the latency histogram's buckets; one more bucket holds what is slower.
LATENCY_BOUNDS_MS = (1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000)
BUCKET_TTL_SECONDS = 15 * 60  # the dashboard shows at most the last 5 minutes
STATE_TTL_SECONDS = 24 * 3600
FLUSH_EVERY_SECONDS = 1.0

# (url name, method) -> group. The rest of /api/ is "api"; anything else (admin, metrics, SSE) "other".
GROUPS = {
    ("checkout-queue", "POST"): "queue",
    ("checkout-initiate", "POST"): "checkout",
    ("orders", "POST"): "checkout",
    ("payment-process", "POST"): "payment",
}
BUSINESS_GROUPS = frozenset(GROUPS.values())  # their 4xx answers with an error code are refusals
ALL_GROUPS = ("queue", "checkout", "payment", "api", "other")


def _fields(group: str) -> tuple[str, dict[int, str], tuple[str, ...]]:
    classes = {c: f"{group}:{c}xx" for c in range(1, 6)}
    return f"{group}:n", classes, tuple(f"{group}:l{i}" for i in range(len(LATENCY_BOUNDS_MS) + 1))


FIELDS = {group: _fields(group) for group in ALL_GROUPS}  # built once: no string formatting per request


def bucket_key(second: int) -> str:
    return caches["default"].make_key(f"live:{second}")


def state_key(name: str) -> str:
    return caches["default"].make_key(f"live:state:{name}")


class Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[int, dict[str, int]] = {}
        self._state: dict[tuple[str, str], str] = {}
        self._pid = 0  # the flush thread belongs to one process (a fork starts its own)
        self._failures = 0

    # --- recording (request path: memory only) ------------------------------------------------

    def observe_request(self, group: str, status: int, seconds: float, error_code: str | None = None) -> None:
        count_field, classes, latency = FIELDS[group]
        latency_field = latency[bisect_left(LATENCY_BOUNDS_MS, seconds * 1000.0)]
        class_field = classes.get(status // 100)
        with self._lock:
            bucket = self._bucket_now()
            bucket[count_field] = bucket.get(count_field, 0) + 1
            bucket[latency_field] = bucket.get(latency_field, 0) + 1
            if class_field is not None:
                bucket[class_field] = bucket.get(class_field, 0) + 1
            if error_code is not None:
                refused = "refused:" + error_code
                bucket[refused] = bucket.get(refused, 0) + 1

    def count(self, field: str, amount: int = 1) -> None:
        """Add to a named counter of the current second (e.g. `orders:queue`, `failed:SOLD_OUT`)."""
        if amount <= 0:
            return
        with self._lock:
            bucket = self._bucket_now()
            bucket[field] = bucket.get(field, 0) + amount

    def _bucket_now(self) -> dict[str, int]:
        """The current second's counters (the caller holds the lock); the first one starts the flusher."""
        second = int(time.time())
        bucket = self._buckets.get(second)
        if bucket is None:
            bucket = self._buckets[second] = {}
            self._ensure_thread()
        return bucket

    def set_state(self, name: str, field: str, value: str) -> None:
        """Last-writer-wins state under `live:state:<name>` (written at the next flush)."""
        with self._lock:
            self._state[(name, field)] = value
            self._ensure_thread()

    # --- flushing (background thread) -----------------------------------------------------------

    def _ensure_thread(self) -> None:
        pid = os.getpid()
        if self._pid != pid:
            self._pid = pid
            threading.Thread(target=self._run, name="live-metrics-flush", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY_SECONDS)
            try:
                self.flush(everything=False)
            except Exception:  # noqa: BLE001 - the flush thread must never die
                log.exception("live metrics: flush failed")

    def take(self, *, everything: bool) -> tuple[dict[int, dict[str, int]], dict[tuple[str, str], str]]:
        """Remove and return the finished seconds (all of them with `everything`) and the state."""
        now = int(time.time())
        with self._lock:
            done = {s: b for s, b in self._buckets.items() if everything or s < now}
            for second in done:
                del self._buckets[second]
            state, self._state = self._state, {}
        return done, state

    def flush(self, *, everything: bool = True) -> int:
        """Write what was taken to Redis in one pipeline; returns the number of commands sent."""
        buckets, state = self.take(everything=everything)
        if not buckets and not state:
            return 0
        try:
            pipe = get_redis_connection("default").pipeline(transaction=False)
            for second, fields in buckets.items():
                key = bucket_key(second)
                for field, amount in fields.items():
                    pipe.hincrby(key, field, amount)
                pipe.expire(key, BUCKET_TTL_SECONDS)
            names = set()
            for (name, field), value in state.items():
                pipe.hset(state_key(name), field, value)
                names.add(name)
            for name in names:
                pipe.expire(state_key(name), STATE_TTL_SECONDS)
            commands = len(pipe)
            pipe.execute()
            self._failures = 0
            return commands
        except RedisError as exc:
            self._failures += 1
            if self._failures in (1, 10) or self._failures % 600 == 0:
                log.warning("live metrics: Redis unavailable, %d second(s) of figures dropped: %s", len(buckets), exc)
            return 0


RECORDER = Recorder()


def live_count(field: str, amount: int = 1) -> None:
    RECORDER.count(field, amount)


def group_of(url_name: str | None, method: str, path: str) -> str:
    group = GROUPS.get((url_name, method))  # type: ignore[arg-type]
    if group is not None:
        return group
    return "api" if path.startswith("/api/v1/") else "other"


def read_buckets(seconds: Iterable[int]) -> dict[int, dict[str, int]]:
    """The flushed buckets of these seconds (one pipeline of HGETALL)."""
    seconds = list(seconds)
    pipe = get_redis_connection("default").pipeline(transaction=False)
    for second in seconds:
        pipe.hgetall(bucket_key(second))
    return {
        second: {k.decode(): int(v) for k, v in raw.items()}
        for second, raw in zip(seconds, pipe.execute(), strict=True)
        if raw
    }
