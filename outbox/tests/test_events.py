"""The message format: what our relay publishes and what the consumer accepts (ours and Debezium's)."""

import datetime as dt
import json
import uuid

import pytest

from outbox.events import (
    MalformedEvent,
    canonical_event_id,
    event_from_parts,
    outbox_message,
    parse_payload,
)

EVENT_ID = uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")


@pytest.mark.parametrize(
    "raw",
    [
        EVENT_ID,
        EVENT_ID.bytes,  # MariaDB's native UUID column in the binlog
        EVENT_ID.hex,  # MySQL's char(32) column (Debezium's header on MySQL)
        EVENT_ID.hex.encode(),
        str(EVENT_ID).upper(),
        f" {EVENT_ID} ",
    ],
)
def test_every_form_of_an_event_id_becomes_the_same_inbox_key(raw):
    assert canonical_event_id(raw) == "6ba7b810-9dad-11d1-80b4-00c04fd430c8"


@pytest.mark.parametrize("tail", [b"\x00", b"\x00\x00\x00"])
def test_the_binlog_trailing_zero_bytes_of_a_uuid_are_restored(settings, tail):
    event_id = uuid.UUID(bytes=EVENT_ID.bytes[: -len(tail)] + tail)
    stripped = event_id.bytes.rstrip(b"\x00")  # what the binlog carries for BINARY(16)
    row = {"id": stripped, "aggregatetype": "order", "aggregateid": "1", "type": "T", "payload": "{}"}
    assert dict(outbox_message(row).headers)["eventId"] == str(event_id).encode()


def test_a_foreign_event_id_is_kept_as_it_is():
    assert canonical_event_id("order-42-paid") == "order-42-paid"


def test_a_binlog_row_becomes_a_debezium_outbox_message(settings):
    settings.KAFKA_TOPIC_PREFIX = "ecommerce"
    row = {
        "id": EVENT_ID.bytes,
        "aggregatetype": "order",
        "aggregateid": "42",
        "type": "PaymentCompleted",
        "payload": '{"orderId": 42, "userId": 7}',  # JSON columns arrive as text
        "created_at": dt.datetime(2026, 1, 1, 12, 0, 0),
    }
    message = outbox_message(row)
    assert message.topic == "ecommerce.events.order"
    assert message.key == b"42"
    assert json.loads(message.value) == {"orderId": 42, "userId": 7}
    assert message.headers == [
        ("id", str(EVENT_ID).encode()),
        ("eventId", str(EVENT_ID).encode()),
        ("eventType", b"PaymentCompleted"),
        ("aggregateType", b"order"),
    ]


def test_debezium_headers_and_key_variants_parse_to_the_same_event():
    ours = event_from_parts(
        headers={"eventId": str(EVENT_ID), "eventType": "CouponIssued", "aggregateType": "coupon"},
        key=b"3",
        value=b'{"userId": 1}',
        topic_name="ecommerce.events.coupon",
    )
    # Debezium on MySQL: default `id` header with the char(32) value, a JSON-converted key, and
    # the payload left as a JSON string (table.expand.json.payload off).
    debezium = event_from_parts(
        headers={"id": EVENT_ID.hex, "eventType": "CouponIssued"},
        key=b'"3"',
        value=json.dumps('{"userId": 1}').encode(),
        topic_name="ecommerce.events.coupon",
    )
    assert ours == debezium
    assert ours.id == str(EVENT_ID) and ours.aggregate_type == "coupon" and ours.aggregate_id == "3"


@pytest.mark.parametrize(
    "headers, value",
    [
        ({"eventType": "CouponIssued"}, b"{}"),  # no id
        ({"eventId": str(EVENT_ID)}, b"{}"),  # no type
        ({"eventId": str(EVENT_ID), "eventType": "X"}, b"not json"),
        ({"eventId": str(EVENT_ID), "eventType": "X"}, b"[1, 2]"),
        ({"eventId": str(EVENT_ID), "eventType": "X"}, None),
    ],
)
def test_malformed_messages_are_refused(headers, value):
    with pytest.raises(MalformedEvent):
        event_from_parts(headers=headers, key=b"1", value=value, topic_name="t.events.x")


def test_payload_accepts_an_object_or_a_json_string_of_one():
    assert parse_payload(b'{"a": 1}') == parse_payload('"{\\"a\\": 1}"') == {"a": 1}
