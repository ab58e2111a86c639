"""Fixtures for every test (registered by the root conftest through `pytest_plugins`)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.support.ports import free_port, wait_for_port
from tests.support.processes import Child, Children, redis_command


@pytest.fixture
def children(tmp_path) -> Iterator[Children]:
    """Start child processes for this test (`children.start(name, argv, env)`), logging to the test's
    tmp_path; every one still running is stopped at the end."""
    started = Children(tmp_path / "logs")
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def private_kafka(settings) -> Callable[..., str]:
    """Give this test Kafka topics and consumer groups of its own: `private_kafka("events.order", ...)`
    sets a fresh KAFKA_TOPIC_PREFIX and KAFKA_GROUP_PREFIX (restored after the test) and creates these
    topics up front, so a consumer is assigned at once and a produce finds its topic; returns the
    prefix. Called again, it moves the test to another fresh prefix."""
    from common.kafka import ensure_topics

    base = settings.KAFKA_GROUP_PREFIX  # this run's own namespace (KAFKA_GROUP_PREFIX in the environment)

    def use(*names: str) -> str:
        prefix = f"{base}_{uuid.uuid4().hex[:10]}"
        settings.KAFKA_TOPIC_PREFIX = prefix
        settings.KAFKA_GROUP_PREFIX = prefix
        ensure_topics([f"{prefix}.{name}" for name in names])
        return prefix

    return use


@pytest.fixture
def throwaway_redis(settings) -> Iterator[Child]:
    """A real redis-server of this test's own, with the caches pointed at it (restored after the
    test): `throwaway_redis.stop()` is a Redis outage that disturbs nobody."""
    port = free_port()
    server = Child(redis_command(port))
    try:
        wait_for_port(port)
        caches = copy.deepcopy(settings.CACHES)
        for cache in caches.values():
            cache["LOCATION"] = f"redis://127.0.0.1:{port}/0"
        settings.CACHES = caches
        yield server
    finally:
        server.stop(10)
