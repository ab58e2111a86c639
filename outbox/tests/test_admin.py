"""The dead letters in the admin: listed, and replayed through the same inbox."""

import json
import uuid

import pytest
from django.urls import reverse

from outbox.models import DeadLetter, ProcessedEvent
from shop.models import Category
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def a_dead_letter(name: str, **fields) -> DeadLetter:
    event_id = str(uuid.uuid4())
    return DeadLetter.objects.create(
        consumer="outbox",
        event_id=event_id,
        event_type="TestCreated",
        topic="ecommerce.events.test",
        partition=0,
        offset=7,
        key="1",
        headers={"eventId": event_id, "eventType": "TestCreated", "aggregateType": "test"},
        payload=json.dumps({"name": name}),
        error="RuntimeError: it broke",
        attempts=5,
        **fields,
    )


def replay(client, *dead_letters):
    return client.post(
        reverse("admin:outbox_deadletter_changelist"),
        {"action": "replay", "_selected_action": [d.pk for d in dead_letters]},
        follow=True,
    )


def test_dead_letters_are_listed(operator):
    dead = a_dead_letter("x")
    response = operator.get(reverse("admin:outbox_deadletter_changelist"))
    assert response.status_code == 200
    assert dead.event_id in response.content.decode()
    assert operator.get(reverse("admin:outbox_deadletter_change", args=[dead.pk])).status_code == 200


def test_replay_applies_once_and_marks_the_letter(operator, register_handler):
    register_handler("TestCreated", lambda e: Category.objects.create(name=e.payload["name"]))
    dead = a_dead_letter("replayed")

    response = replay(operator, dead)
    assert "1 applied now, 0 had been applied already" in response.content.decode()
    dead.refresh_from_db()
    assert dead.replayed_at is not None
    assert list(Category.objects.values_list("name", flat=True)) == ["replayed"]

    response = replay(operator, dead)  # again: the inbox has it
    assert "0 applied now, 1 had been applied already" in response.content.decode()
    assert Category.objects.count() == 1
    assert ProcessedEvent.objects.filter(event_id=dead.event_id).count() == 1


def test_a_replay_that_fails_again_is_reported_and_counted(operator, register_handler):
    def still_broken(event):
        raise RuntimeError("still broken")

    register_handler("TestCreated", still_broken)
    dead = a_dead_letter("x")

    response = replay(operator, dead)

    assert "RuntimeError: still broken" in response.content.decode()
    dead.refresh_from_db()
    assert (dead.attempts, dead.replayed_at, dead.error) == (6, None, "RuntimeError: still broken")
    assert ProcessedEvent.objects.count() == 0


def test_staff_without_the_permission_cannot_replay(client, register_handler):
    from django.contrib.auth.models import Permission

    register_handler("TestCreated", lambda e: Category.objects.create(name=e.payload["name"]))
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_deadletter"))
    client.force_login(viewer)
    dead = a_dead_letter("x")

    replay(client, dead)

    assert Category.objects.count() == 0
    dead.refresh_from_db()
    assert dead.replayed_at is None


def test_the_event_list_shows_the_pipeline_lag_and_the_waiting_dead_letters(operator):
    from datetime import timedelta

    from django.utils import timezone

    from outbox.models import OutboxEvent

    a_dead_letter("waiting")
    a_dead_letter("done", replayed_at=timezone.now())
    event = OutboxEvent.objects.create(aggregatetype="test", aggregateid="1", type="TestCreated", payload={})
    OutboxEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(seconds=120))

    page = operator.get(reverse("admin:outbox_outboxevent_changelist")).content.decode()

    assert "Dead letters waiting: <strong>1</strong>" in page
    age = float(page.split("oldest unapplied event <strong>")[1].split(" s</strong>")[0])
    assert 119 <= age < 180
    assert "replayed_at__isempty=1" in page
