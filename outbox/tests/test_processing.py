"""Applying events once (inbox + handler in one transaction), publications, the fallback, the purge."""

import datetime as dt
import json
import uuid

import pytest
from django.db import transaction
from django.utils import timezone
from django_eventstream.models import Event as SseEvent

from common.kafka import OutgoingMessage
from common.sse.notify import Notification, sse_notify
from outbox.apply import event_apply, events_apply
from outbox.events import Event, event_from_row
from outbox.fallback import outbox_fallback_run
from outbox.handlers import Publication
from outbox.models import DeadLetter, FallbackWatermark, OutboxEvent, ProcessedEvent
from outbox.purge import inbox_purge_run, outbox_purge_run
from outbox.services import InboxRace, outbox_enqueue
from shop.models import Category
from tests.support.kafka import read_topic
from tests.support.sse import stored_payload


def an_event(event_type: str = "TestCreated", **payload) -> Event:
    return Event(id=str(uuid.uuid4()), type=event_type, aggregate_type="test", aggregate_id="1", payload=payload)


def create_category(event: Event) -> None:
    Category.objects.create(name=event.payload["name"])


def enqueue(event_type: str, *, age: float = 0.0, **payload) -> OutboxEvent:
    """An outbox row written like the services write it, created `age` seconds ago."""
    with transaction.atomic():
        row = outbox_enqueue(aggregate_type="test", aggregate_id=1, event_type=event_type, payload=payload)
    if age:
        OutboxEvent.objects.filter(pk=row.pk).update(created_at=timezone.now() - dt.timedelta(seconds=age))
        row.refresh_from_db()
    return row


@pytest.mark.django_db
def test_an_enqueued_row_reads_back_as_the_instance_it_returned():
    """`outbox_enqueue` writes its row as SQL: the ORM (the fallback, the admin) must read the same row."""
    before = timezone.now()
    at = dt.datetime(2026, 12, 4, 20, 0, 0, 123000, tzinfo=dt.UTC)  # DjangoJSONEncoder keeps milliseconds
    with transaction.atomic():
        row = outbox_enqueue(
            aggregate_type="order",
            aggregate_id=42,
            event_type="TestCreated",
            payload={"amount": 1500, "at": at, "id": uuid.UUID(int=7), "nested": {"items": [1, 2]}, "none": None},
        )

    stored = OutboxEvent.objects.get(pk=row.pk)
    assert isinstance(row.pk, uuid.UUID) and stored.pk == row.pk
    assert (stored.aggregatetype, stored.aggregateid, stored.type) == ("order", "42", "TestCreated")
    assert (
        stored.payload
        == row.payload
        == {
            "amount": 1500,
            "at": "2026-12-04T20:00:00.123Z",
            "id": str(uuid.UUID(int=7)),
            "nested": {"items": [1, 2]},
            "none": None,
        }
    )
    assert stored.created_at == row.created_at and before <= stored.created_at <= timezone.now()
    assert event_from_row(stored) == event_from_row(row)


@pytest.mark.django_db
def test_an_event_is_applied_once_and_recorded_with_its_effect(register_handler):
    register_handler("TestCreated", create_category)
    event = an_event(name="one")

    assert event_apply(event, source="test") is True
    assert event_apply(event, source="test") is False  # the same event again: no effect

    assert list(Category.objects.values_list("name", flat=True)) == ["one"]
    assert list(ProcessedEvent.objects.values_list("consumer", "event_id")) == [("outbox", event.id)]


@pytest.mark.django_db
def test_a_failing_handler_leaves_neither_effect_nor_inbox_record(register_handler):
    def half_then_fail(event: Event) -> None:
        create_category(event)
        raise RuntimeError("downstream broke")

    register_handler("TestCreated", half_then_fail)
    event = an_event(name="one")
    with pytest.raises(RuntimeError):
        event_apply(event, source="test")
    assert Category.objects.count() == 0 and ProcessedEvent.objects.count() == 0

    register_handler("TestCreated", create_category)  # fixed: the retry applies it
    assert event_apply(event, source="test") is True
    assert Category.objects.count() == 1


@pytest.mark.django_db
def test_an_event_without_handler_is_recorded_as_seen():
    event = an_event("NobodyHandlesThis")
    assert event_apply(event, source="test") is True
    assert ProcessedEvent.objects.filter(event_id=event.id).count() == 1


@pytest.mark.django_db(transaction=True)
def test_coupon_issued_stores_its_sse_event_once():
    event = an_event("CouponIssued", userCouponId=11, couponId=3, userId=4242)
    event_apply(event, source="test")
    event_apply(event, source="test")

    pushed = SseEvent.objects.filter(channel="user-4242", type="coupon-issued")
    assert [stored_payload(e.data) for e in pushed] == [{"userCouponId": 11, "couponId": 3}]


@pytest.mark.django_db
def test_sse_notifications_are_rolled_back_with_a_failing_chunk(register_handler):
    def notify_then_fail(event: Event) -> None:
        sse_notify([Notification(4243, "test-notified", {"name": event.payload["name"]})])
        if event.payload["name"] == "bad":
            raise RuntimeError("downstream broke")

    register_handler("TestCreated", notify_then_fail)
    with pytest.raises(RuntimeError):
        events_apply([an_event(name="good"), an_event(name="bad")], source="test")
    assert not SseEvent.objects.filter(channel="user-4243").exists()
    assert ProcessedEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_handler_with_many_receives_the_chunks_new_events_of_its_type_at_once(register_handler):
    calls: list[list[str]] = []
    register_handler("TestCreated", lambda events: calls.append([e.payload["name"] for e in events]), many=True)
    register_handler("TestOther", create_category)
    seen = an_event(name="seen")
    event_apply(seen, source="test")
    calls.clear()

    one, two, other = an_event(name="one"), an_event(name="two"), an_event("TestOther", name="other")
    assert events_apply([one, other, one, two], source="test") == [True, True, False, True]  # `one` twice
    assert calls == [["one", "two"]]
    assert Category.objects.get().name == "other"

    with pytest.raises(InboxRace):  # partly applied: the consumer then applies it one event at a time
        events_apply([seen, an_event(name="three")], source="test")
    assert events_apply([seen, one, two], source="test") == [False, False, False]
    assert calls == [["one", "two"]]


@pytest.fixture
def publication_topic(private_kafka) -> str:
    return f"{private_kafka('test-feed')}.test-feed"


@pytest.mark.django_db
def test_a_publication_is_sent_once_and_retried_until_sent(register_handler, publication_topic):
    target = {"topic": "invalid topic name!"}

    def build(event: Event) -> OutgoingMessage:
        return OutgoingMessage(
            target["topic"], b"k", json.dumps(event.payload).encode(), [("eventId", event.id.encode())]
        )

    register_handler("TestCreated", create_category, publications=[Publication("outbox.test-feed", build)])
    event = an_event(name="one")

    with pytest.raises(Exception):  # noqa: B017 - the broker refuses: whatever it raises
        event_apply(event, source="test")
    # The effect committed; the publication is not recorded, so a retry sends it.
    assert Category.objects.count() == 1
    assert not ProcessedEvent.objects.filter(consumer="outbox.test-feed").exists()

    target["topic"] = publication_topic
    assert event_apply(event, source="test") is False  # effect: duplicate; publication: sent now
    assert event_apply(event, source="test") is False  # and not again
    messages = read_topic(publication_topic, expect=1)
    assert [json.loads(m.value()) for m in messages] == [{"name": "one"}]
    assert Category.objects.count() == 1
    assert ProcessedEvent.objects.filter(consumer="outbox.test-feed", event_id=event.id).count() == 1


@pytest.mark.django_db
def test_fallback_applies_every_old_unapplied_event_oldest_first_across_batches(register_handler, settings):
    settings.OUTBOX_FALLBACK_BATCH = 4
    settings.OUTBOX_FALLBACK_AFTER_SECONDS = 30
    applied: list[str] = []
    register_handler("TestCreated", lambda e: applied.append(e.payload["name"]))
    old = [enqueue("TestCreated", age=100 - i, name=f"old{i}") for i in range(10)]  # old0 is the oldest
    done = enqueue("TestCreated", age=50, name="done")
    event_apply(event_from_row(done), source="test")
    applied.clear()
    enqueue("TestCreated", age=5, name="young")  # not old enough: the consumer still has time

    report = outbox_fallback_run()

    assert applied == [f"old{i}" for i in range(10)]
    assert (report.applied, report.failed) == (10, 0)
    assert ProcessedEvent.objects.filter(consumer="outbox").count() == 11
    watermark = FallbackWatermark.objects.get(name=FallbackWatermark.FALLBACK).position
    assert timezone.now() - dt.timedelta(seconds=31) < watermark < timezone.now() - dt.timedelta(seconds=29)

    assert outbox_fallback_run().applied == 0  # nothing twice
    assert len(old) == 10


@pytest.mark.django_db
def test_fallback_keeps_going_past_a_failure_and_retries_it_next_time(register_handler, settings):
    settings.OUTBOX_FALLBACK_BATCH = 2
    broken = {"bad"}
    applied: list[str] = []

    def apply(event: Event) -> None:
        if event.payload["name"] in broken:
            raise RuntimeError("not yet")
        applied.append(event.payload["name"])

    register_handler("TestCreated", apply)
    enqueue("TestCreated", age=90, name="a")
    bad = enqueue("TestCreated", age=80, name="bad")
    enqueue("TestCreated", age=70, name="c")

    report = outbox_fallback_run()
    assert (report.applied, report.failed, applied) == (2, 1, ["a", "c"])
    assert FallbackWatermark.objects.get(name=FallbackWatermark.FALLBACK).position == bad.created_at  # held back

    broken.clear()
    report = outbox_fallback_run()
    assert (report.applied, report.failed, applied) == (1, 0, ["a", "c", "bad"])


@pytest.mark.django_db
def test_fallback_leaves_dead_letters_to_the_operator(register_handler):
    applied: list[str] = []
    register_handler("TestCreated", lambda e: applied.append(e.payload["name"]))
    row = enqueue("TestCreated", age=90, name="poison")
    DeadLetter.objects.create(consumer="outbox", event_id=str(row.id), error="boom", attempts=5)

    assert outbox_fallback_run().applied == 0 and applied == []

    DeadLetter.objects.update(replayed_at=timezone.now())  # replayed (but, say, not applied)
    assert outbox_fallback_run().applied == 1 and applied == ["poison"]


@pytest.mark.django_db
def test_fallback_sends_a_publication_that_was_not_recorded(register_handler, publication_topic):
    def build(event: Event) -> OutgoingMessage:
        return OutgoingMessage(publication_topic, b"k", json.dumps(event.payload).encode(), [])

    register_handler("TestCreated", create_category, publications=[Publication("outbox.test-feed", build)])
    row = enqueue("TestCreated", age=90, name="x")
    ProcessedEvent.objects.create(consumer="outbox", event_id=str(row.id))  # applied, feed not sent

    report = outbox_fallback_run()

    assert report.duplicates == 1 and Category.objects.count() == 0  # the effect is not repeated
    assert [json.loads(m.value()) for m in read_topic(publication_topic, expect=1)] == [{"name": "x"}]
    assert outbox_fallback_run().duplicates == 0


@pytest.mark.django_db
def test_purge_deletes_only_old_rows_every_step_recorded(register_handler, publication_topic, settings):
    settings.OUTBOX_PURGE_AFTER_DAYS = 7
    register_handler("TestCreated", lambda e: None)
    register_handler("TestFed", lambda e: None, publications=[Publication("outbox.test-feed", lambda e: None)])
    days = 24 * 3600
    applied_old = enqueue("TestCreated", age=8 * days)
    unapplied_old = enqueue("TestCreated", age=8 * days)
    applied_young = enqueue("TestCreated", age=6 * days)
    fed_old = enqueue("TestFed", age=8 * days)
    unfed_old = enqueue("TestFed", age=8 * days)
    for row in (applied_old, applied_young, fed_old, unfed_old):
        ProcessedEvent.objects.create(consumer="outbox", event_id=str(row.id))
    ProcessedEvent.objects.create(consumer="outbox.test-feed", event_id=str(fed_old.id))

    assert outbox_purge_run(batch_size=1) == 2

    assert set(OutboxEvent.objects.values_list("id", flat=True)) == {unapplied_old.id, applied_young.id, unfed_old.id}


def inbox_rows(now: dt.datetime, age: dt.timedelta, count: int, *, consumer: str = "outbox") -> list[str]:
    """`count` inbox records processed `age` before `now`; returns their event ids."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    ProcessedEvent.objects.bulk_create([ProcessedEvent(consumer=consumer, event_id=event_id) for event_id in ids])
    ProcessedEvent.objects.filter(event_id__in=ids).update(processed_at=now - age)
    return ids


@pytest.fixture
def inbox_purge_settings(settings):
    settings.OUTBOX_INBOX_RETENTION_DAYS = 14
    settings.OUTBOX_PURGE_AFTER_DAYS = 7
    settings.OUTBOX_FALLBACK_REWIND_SECONDS = 120
    return settings


@pytest.mark.django_db
def test_inbox_purge_deletes_records_older_than_the_retention_in_batches(inbox_purge_settings):
    now = timezone.now()
    FallbackWatermark.objects.create(name=FallbackWatermark.FALLBACK, position=now - dt.timedelta(seconds=30))
    day = dt.timedelta(days=1)
    old = inbox_rows(now, 15 * day, 5) + inbox_rows(now, 20 * day, 2, consumer="outbox.test-feed")
    dead_lettered = inbox_rows(now, 15 * day, 1)  # a replay may still come: kept
    DeadLetter.objects.create(
        consumer="outbox", event_id=dead_lettered[0], event_type="TestCreated", topic="t", payload="{}", error="x"
    )
    young = inbox_rows(now, 14 * day - dt.timedelta(minutes=1), 3) + inbox_rows(now, dt.timedelta(hours=1), 2)

    assert inbox_purge_run(now=now, batch_size=2) == 7  # three full batches, then one of 1

    assert sorted(ProcessedEvent.objects.values_list("event_id", flat=True)) == sorted(dead_lettered + young)
    assert not ProcessedEvent.objects.filter(event_id__in=old).exists()
    assert inbox_purge_run(now=now, batch_size=2) == 0


@pytest.mark.django_db
def test_inbox_purge_keeps_what_the_fallback_or_the_outbox_purge_may_still_need(inbox_purge_settings):
    now = timezone.now()
    day = dt.timedelta(days=1)
    inbox_rows(now, 30 * day, 2)
    assert inbox_purge_run(now=now) == 0  # no fallback run yet: its first run looks at every event

    held_back = now - 20 * day  # an event failing for 20 days holds the fallback's watermark there
    FallbackWatermark.objects.create(name=FallbackWatermark.FALLBACK, position=held_back)
    inbox_rows(now, 20 * day + dt.timedelta(seconds=60), 3)  # within the fallback's rewind
    inbox_rows(now, 15 * day, 4)
    assert inbox_purge_run(now=now) == 2  # only the 30-day-old ones
    assert ProcessedEvent.objects.count() == 7

    FallbackWatermark.objects.filter(name=FallbackWatermark.FALLBACK).update(position=now)
    inbox_purge_settings.OUTBOX_INBOX_RETENTION_DAYS = 3  # shorter than the outbox purge's 7: 7 wins
    inbox_rows(now, 5 * day, 6)
    assert inbox_purge_run(now=now) == 7
    assert ProcessedEvent.objects.count() == 6
