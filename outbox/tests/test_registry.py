"""The handler registry is complete in every process that applies events."""

import json
import os
import subprocess
import sys

from django.conf import settings

from outbox.handlers import load_handlers

DOMAIN_EVENTS = {"PaymentCompleted", "OrderCancelled", "OrderExpired", "CouponIssued"}

# What a Celery worker does before its first fallback run: set Django up and import the task module.
FRESH_PROCESS = """
import json
import django
django.setup()
import outbox.tasks
from outbox.handlers import HANDLERS
from outbox.apply import publication_steps
before = sorted(HANDLERS)
steps = publication_steps()
print(json.dumps({"before": before, "after": sorted(HANDLERS), "steps": steps}))
"""


def test_loading_registers_a_handler_for_every_domain_event():
    handlers = load_handlers()
    assert DOMAIN_EVENTS <= set(handlers)
    assert {h.apply.__module__ for t, h in handlers.items() if t in DOMAIN_EVENTS} == {
        "orders.handlers",
        "shop.handlers",
    }


def test_a_fresh_worker_process_loads_the_handlers_on_first_use():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    out = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert not DOMAIN_EVENTS & set(seen["before"])  # nothing imported them before the first use
    assert DOMAIN_EVENTS <= set(seen["after"])
    assert seen["steps"] == {"outbox.data-platform": ["PaymentCompleted"]}
