"""Outbox gauges on /metrics and the relay-lag warning on /readyz."""

import datetime as dt
import re

import pytest
from django.db import transaction
from django.utils import timezone

from outbox.metrics import COLLECTOR
from outbox.models import DeadLetter, OutboxEvent, ProcessedEvent, RelayCheckpoint
from outbox.selectors import outbox_state
from outbox.services import outbox_enqueue

pytestmark = pytest.mark.django_db


def event(*, age: float) -> OutboxEvent:
    with transaction.atomic():
        row = outbox_enqueue(aggregate_type="test", aggregate_id=1, event_type="TestCreated", payload={})
    OutboxEvent.objects.filter(pk=row.pk).update(created_at=timezone.now() - dt.timedelta(seconds=age))
    row.refresh_from_db()
    return row


def relay_checkpoint(*, last_relayed_age: float) -> None:
    RelayCheckpoint.objects.create(
        name="outbox_relay",
        log_file="binlog.000001",
        log_pos=4,
        last_event_created_at=timezone.now() - dt.timedelta(seconds=last_relayed_age),
        updated_at=timezone.now(),
    )


def gauge(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def test_state_measures_relay_backlog_oldest_unapplied_and_dead_letters():
    relay_checkpoint(last_relayed_age=100)
    relayed = event(age=100.5)  # before the relay's last one: not pending for the relay
    applied_unrelayed = event(age=40)
    unapplied = event(age=20)
    ProcessedEvent.objects.create(consumer="outbox", event_id=str(relayed.id))
    ProcessedEvent.objects.create(consumer="outbox", event_id=str(applied_unrelayed.id))
    DeadLetter.objects.create(consumer="outbox", event_id="x", error="e")
    DeadLetter.objects.create(consumer="outbox", event_id="y", error="e", replayed_at=timezone.now())

    state = outbox_state()

    assert 39 < state.relay < 42  # the oldest row after the relay's last one waits for 40 s
    assert 19 < state.unapplied < 22 and unapplied.created_at
    assert state.dead_letters == 1


def test_metrics_endpoint_shows_the_outbox_gauges(api):
    relay_checkpoint(last_relayed_age=10)
    event(age=5)
    COLLECTOR._cached = (0.0, [])  # no value cached by an earlier scrape

    text = api.get("/metrics").content.decode()

    assert 4 < gauge(text, "outbox_relay_pending_seconds") < 7
    assert 4 < gauge(text, "outbox_oldest_unapplied_event_age_seconds") < 7
    assert gauge(text, "outbox_dead_letters") == 0
    assert "outbox_relay_lag_seconds_bucket" in text and "outbox_consumer_lag_seconds_bucket" in text


def test_readyz_warns_when_the_relay_lags_far_behind(api, settings):
    settings.OUTBOX_RELAY_LAG_WARN_SECONDS = 30
    relay_checkpoint(last_relayed_age=120)
    assert api.get("/readyz").json()["data"]["warnings"] == {}

    event(age=45)  # waiting for the relay for 45 s
    response = api.get("/readyz")

    assert response.status_code == 200  # a warning, not a failure: the fallback applies events meanwhile
    assert response.json()["data"]["warnings"]["outbox_relay"].startswith("outbox relay is 45 s behind")


def test_without_a_relay_there_is_no_relay_gauge_nor_warning(api):
    event(age=300)  # Debezium publishes instead: no checkpoint of ours
    assert outbox_state().relay is None
    assert api.get("/readyz").json()["data"]["warnings"] == {}
