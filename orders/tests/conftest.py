"""Fixtures of the orders tests: the flash-sale queue's topic and its checkout consumer processes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orders.queue.keys import QUEUE_TOPIC
from tests.support.processes import Child, Children, child_env, manage_command


@pytest.fixture
def queue_topic(private_kafka) -> str:
    """The queue's topic under a prefix of this test's own (created up front, so a consumer is
    assigned at once); returns the prefix."""
    return private_kafka(QUEUE_TOPIC)


@pytest.fixture
def checkout_consumer(queue_topic, children: Children) -> Callable[[], Child]:
    """Start (and, after a kill, restart) `manage.py run_consumer checkout` as a child process on this
    test's topic, always in the same consumer group; stopped at the end."""
    env = child_env()
    return lambda: children.start("checkout", manage_command("run_consumer", "checkout"), env)
