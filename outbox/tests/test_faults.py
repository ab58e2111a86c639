"""MariaDB restarted under the relay (`make test-faults`): it stops and restarts the project's shared
database server, so it is kept out of the normal run."""

import os
import subprocess
import sys
import time
from collections import Counter

import pytest
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from outbox.models import OutboxEvent
from outbox.tests.processes import wait_until
from outbox.tests.test_relay import Writer, applied, assert_exactly_once, start_both, wait_applied

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def devservices(command: str) -> None:
    env = {**os.environ, "LOCAL_SERVICES": "mariadb"}  # only the database: Redis and the broker stay up
    subprocess.run(
        [sys.executable, "scripts/devservices.py", command], cwd=settings.BASE_DIR, env=env, check=True, timeout=120
    )


def through_outage(fn):
    """Run a query of this test, reconnecting while the database restarts."""
    for _ in range(300):
        try:
            return fn()
        except (OperationalError, InterfaceError):
            connection.close()
            time.sleep(0.2)
    raise AssertionError("the database did not come back")


def test_mariadb_restarted_while_relaying_loses_nothing(outbox_processes):
    start_both(outbox_processes)
    writer = Writer(count=800, rate=200, tolerate_outage=True)
    thread = writer.start()
    wait_until(lambda: len(applied()) > 150, timeout=30, message="the stream to be under way")
    devservices("down")
    time.sleep(1.0)
    devservices("up")
    thread.join()

    committed = through_outage(
        lambda: {row.payload["userCouponId"] for row in OutboxEvent.objects.filter(type="CouponIssued")}
    )
    committed.discard(0)
    counts = through_outage(lambda: wait_applied(committed, outbox_processes, timeout=90))

    assert committed == writer.numbers  # every write eventually committed (retried through the outage)
    assert_exactly_once(counts - Counter({0: 1}), committed, outbox_processes)
    assert outbox_processes.running("relay") and outbox_processes.running("consumer")
    assert "resuming from the checkpoint" in outbox_processes.log("relay", tail=10_000)
