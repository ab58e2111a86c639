"""The outbox consumer, run in this process against the real broker: Debezium's messages and ours have
the same effects, duplicates have none, a message that keeps failing becomes a dead letter."""

import json
import uuid

import pytest
from confluent_kafka import Producer
from django.conf import settings as django_settings
from django.db import transaction
from django_eventstream.models import Event as SseEvent

from common.kafka import ConsumerRunner, ensure_topics
from orders.consumers import CHECKOUT_CONSUMER
from outbox.consumers import outbox_consumer_spec
from outbox.events import Event, dead_letter_topic, event_from_row, outbox_message
from outbox.fallback import outbox_fallback_run
from outbox.models import DeadLetter, OutboxEvent, ProcessedEvent
from outbox.services import outbox_enqueue
from outbox.tests.processes import EVENT_TOPICS
from shop.models import Category
from tests.support.kafka import FAST_GROUP, read_topic
from tests.support.sse import stored_payload


@pytest.fixture
def kafka_prefix(private_kafka) -> str:
    """Topics and group of this test only."""
    return private_kafka(*EVENT_TOPICS)


def run_consumer(*, seconds: float = 30, idle: float = 2.0) -> None:
    ConsumerRunner(outbox_consumer_spec(), **FAST_GROUP).run(idle_timeout=idle, max_seconds=seconds)


def produce(messages: list[tuple[str, bytes | None, bytes | None, list]]) -> None:
    producer = Producer({"bootstrap.servers": django_settings.KAFKA_BOOTSTRAP_SERVERS})
    for topic_name, key, value, headers in messages:
        producer.produce(topic_name, key=key, value=value, headers=headers)
    assert producer.flush(10) == 0


def coupon_issued_row(user_id: int, user_coupon_id: int) -> OutboxEvent:
    with transaction.atomic():
        return outbox_enqueue(
            aggregate_type="coupon",
            aggregate_id=3,
            event_type="CouponIssued",
            payload={"userCouponId": user_coupon_id, "couponId": 3, "userId": user_id},
        )


def debezium_message(row: OutboxEvent) -> tuple[str, bytes, bytes, list]:
    """What Debezium publishes for this row with docker/debezium/outbox-connector.json on MySQL 8:
    StringConverter key, JsonConverter value (schemas off, payload expanded), the router's default
    `id` header plus `eventId`/`eventType`/`aggregateType` (table.fields.additional.placement); on
    MySQL a Django UUIDField is char(32), so both id headers carry 32 hex digits."""
    hex_id = row.id.hex.encode()
    return (
        f"{django_settings.KAFKA_TOPIC_PREFIX}.events.{row.aggregatetype}",
        row.aggregateid.encode(),
        json.dumps(row.payload, separators=(",", ":")).encode(),
        [
            ("id", hex_id),
            ("eventType", row.type.encode()),
            ("aggregateType", row.aggregatetype.encode()),
            ("eventId", hex_id),
        ],
    )


def relay_message(row: OutboxEvent) -> tuple[str, bytes, bytes, list]:
    """What our relay publishes for it (from the binlog row: native UUID bytes, JSON as text)."""
    message = outbox_message(
        {
            "id": row.id.bytes,
            "aggregatetype": row.aggregatetype,
            "aggregateid": row.aggregateid,
            "type": row.type,
            "payload": json.dumps(row.payload),
        }
    )
    return message.topic, message.key, message.value, message.headers


def coupon_sse(user_id: int) -> list[dict]:
    rows = SseEvent.objects.filter(channel=f"user-{user_id}", type="coupon-issued").order_by("id")
    return [stored_payload(row.data) for row in rows]


@pytest.mark.django_db(transaction=True)
def test_debezium_messages_and_relay_messages_have_the_same_effects_once(kafka_prefix):
    user_id = 910_001
    only_debezium, only_relay, both = (coupon_issued_row(user_id, n) for n in (1, 2, 3))
    produce(
        [
            debezium_message(only_debezium),
            relay_message(only_relay),
            debezium_message(both),
            relay_message(both),  # the same event twice, in two formats: one effect
            debezium_message(both),
        ]
    )

    run_consumer()

    assert sorted(d["userCouponId"] for d in coupon_sse(user_id)) == [1, 2, 3]
    recorded = set(ProcessedEvent.objects.filter(consumer="outbox").values_list("event_id", flat=True))
    assert recorded == {str(only_debezium.id), str(only_relay.id), str(both.id)}  # one inbox key per event
    # The fallback recognises them all as applied (the id forms meet in the inbox).
    report = outbox_fallback_run(now=only_debezium.created_at.replace(year=2100))
    assert (report.applied, report.duplicates) == (0, 0)
    assert DeadLetter.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_message_that_keeps_failing_becomes_a_dead_letter_and_the_rest_goes_on(
    kafka_prefix, register_handler, settings
):
    settings.OUTBOX_AGGREGATE_TYPES = [*settings.OUTBOX_AGGREGATE_TYPES, "test"]
    calls: list[str] = []

    def flaky(event: Event) -> None:
        calls.append(event.payload["name"])
        if event.payload["name"] == "poison":
            raise RuntimeError("cannot apply poison")
        Category.objects.create(name=event.payload["name"])

    register_handler("TestCreated", flaky)
    topic_name = f"{kafka_prefix}.events.test"
    ensure_topics([topic_name])

    def message(name: str) -> tuple[str, bytes, bytes, list]:
        event_id = str(uuid.uuid4())
        headers = [("eventId", event_id.encode()), ("eventType", b"TestCreated"), ("aggregateType", b"test")]
        return topic_name, b"same-key", json.dumps({"name": name}).encode(), headers

    produce([message("before"), message("poison"), message("after")])  # one partition, this order

    run_consumer()

    # In its chunk once; then, the chunk being partly applied ("before"), alone: OUTBOX_MAX_ATTEMPTS rounds.
    assert calls.count("poison") == 1 + 5
    assert sorted(Category.objects.values_list("name", flat=True)) == ["after", "before"]
    dead = DeadLetter.objects.get()
    assert (dead.consumer, dead.event_type, dead.topic, dead.attempts) == ("outbox", "TestCreated", topic_name, 5)
    assert dead.error == "RuntimeError: cannot apply poison"
    assert json.loads(dead.payload) == {"name": "poison"} and dead.key == "same-key"
    assert dead.headers["eventType"] == "TestCreated" and dead.replayed_at is None

    copies = read_topic(dead_letter_topic(), expect=1)
    assert len(copies) == 1 and json.loads(copies[0].value()) == {"name": "poison"}
    headers = dict(copies[0].headers())
    assert headers["dlqAttempts"] == b"5" and headers["dlqTopic"] == topic_name.encode()


@pytest.mark.django_db(transaction=True)
def test_a_malformed_message_is_dead_lettered_at_once(kafka_prefix):
    produce([(f"{kafka_prefix}.events.coupon", b"1", b"{not json", [("eventType", b"CouponIssued")])])

    run_consumer()

    dead = DeadLetter.objects.get()
    assert dead.attempts == 1 and dead.error.startswith("MalformedEvent: missing eventId")
    assert dead.event_id.startswith(f"{kafka_prefix}.events.coupon/")


def test_event_from_row_matches_the_relay_message_for_the_same_row(db):
    row = coupon_issued_row(5, 6)
    topic_name, key, value, headers = relay_message(row)
    assert event_from_row(row).id == dict(headers)["eventId"].decode() == str(row.id)


def test_the_outbox_consumer_waits_longer_per_fetch_than_the_checkout_queue(settings):
    """The outbox consumer's fetch wait is its own (OUTBOX_FETCH_WAIT_MAX_MS), over the shared consumer
    settings; the checkout queue keeps the shared one, and each runner's idle probe follows its own."""
    settings.KAFKA_CONSUMER_CONFIG = {**settings.KAFKA_CONSUMER_CONFIG, "fetch.wait.max.ms": 10}
    settings.OUTBOX_FETCH_WAIT_MAX_MS = 50
    outbox, checkout = ConsumerRunner(outbox_consumer_spec()), ConsumerRunner(CHECKOUT_CONSUMER)
    try:
        assert (outbox.config["fetch.wait.max.ms"], checkout.config["fetch.wait.max.ms"]) == (50, 10)
        assert (outbox.pacer.probe, checkout.pacer.probe) == pytest.approx((0.15, 0.05))
    finally:
        outbox.consumer.close()
        checkout.consumer.close()
