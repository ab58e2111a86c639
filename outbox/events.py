"""One outbox event, whichever way it arrives: a Kafka message in Debezium's outbox event router
format (from our relay or from Debezium itself), or an outbox row read by the fallback.

The Kafka format (docker/debezium/outbox-connector.json):
topic `<prefix>.events.<aggregatetype>`, key = aggregateid, value = the payload JSON, headers
`id` and `eventId` (the row id), `eventType`, `aggregateType`.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from common.kafka import OutgoingMessage, header, topic


class MalformedEvent(ValueError):
    """A message that can never be applied as it is (no event id or type, payload not a JSON object)."""


@dataclass(frozen=True)
class Event:
    id: str  # canonical UUID text with dashes: the inbox key, whatever the source
    type: str
    aggregate_type: str
    aggregate_id: str
    payload: dict[str, Any]


def canonical_event_id(raw: bytes | str | uuid.UUID) -> str:
    """The inbox key of an event id in any form it travels in.

    MariaDB stores Django's UUIDField as a native UUID (the binlog carries 16 raw bytes), MySQL as
    char(32) hex (Debezium's header then has no dashes); Django and our relay write dashed text.
    Anything that is not a UUID is kept as it is (stripped), so foreign ids still dedupe.
    """
    if isinstance(raw, uuid.UUID):
        return str(raw)
    if isinstance(raw, bytes | bytearray):
        if len(raw) == 16:
            return str(uuid.UUID(bytes=bytes(raw)))
        raw = raw.decode(errors="replace")
    text = raw.strip()
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text


def outbox_message(row: dict[str, Any]) -> OutgoingMessage:
    """The message for one outbox row as the binlog gives it (JSON columns arrive as text), exactly as
    Debezium's outbox event router would publish the row."""
    event_id = canonical_event_id(binlog_uuid(row["id"]))
    aggregate_type = str(row["aggregatetype"])
    payload = row["payload"]
    if not isinstance(payload, str | bytes):
        payload = json.dumps(payload, separators=(",", ":"))
    return OutgoingMessage(
        topic=events_topic(aggregate_type),
        key=str(row["aggregateid"]).encode(),
        value=payload.encode() if isinstance(payload, str) else payload,
        headers=[
            ("id", event_id.encode()),
            ("eventId", event_id.encode()),
            ("eventType", str(row["type"]).encode()),
            ("aggregateType", aggregate_type.encode()),
        ],
    )


def binlog_uuid(value: Any) -> Any:
    """A native UUID column arrives as BINARY(16) bytes, and the binlog strips a BINARY value's
    trailing 0x00 bytes (measured: 1 UUID in 256 ends in one): pad them back."""
    if isinstance(value, bytes | bytearray) and len(value) < 16:
        return bytes(value).ljust(16, b"\x00")
    return value


def events_topic(aggregate_type: str) -> str:
    return topic(f"events.{aggregate_type}")


def dead_letter_topic() -> str:
    return topic("events.dlq")


def event_from_message(msg: Message) -> Event:
    """Parse a relayed message (ours or Debezium's). Raises MalformedEvent."""
    names = {name: header(msg, name) for name in ("eventId", "id", "eventType", "aggregateType")}
    return event_from_parts(headers=names, key=msg.key(), value=msg.value(), topic_name=msg.topic() or "")


def event_from_parts(
    *, headers: Mapping[str, str | None], key: bytes | str | None, value: Any, topic_name: str
) -> Event:
    """The Event in a message's headers, key and value (also used to replay a stored dead letter)."""
    raw_id = headers.get("eventId") or headers.get("id")
    event_type = headers.get("eventType")
    if not raw_id or not event_type:
        raise MalformedEvent("missing eventId/id or eventType header")
    return Event(
        id=canonical_event_id(raw_id),
        type=event_type,
        aggregate_type=headers.get("aggregateType") or topic_name.rsplit(".", 1)[-1],
        aggregate_id=_text_key(key),
        payload=parse_payload(value),
    )


def event_from_row(row: Any) -> Event:
    """An `OutboxEvent` instance as an Event (the fallback's source)."""
    payload = row.payload
    if not isinstance(payload, dict):
        payload = parse_payload(payload)
    return Event(
        id=canonical_event_id(row.id),
        type=row.type,
        aggregate_type=row.aggregatetype,
        aggregate_id=str(row.aggregateid),
        payload=payload,
    )


def parse_payload(value: bytes | str | dict | None) -> dict[str, Any]:
    """The JSON object in a message value. Accepts a JSON string that holds JSON (what Debezium sends
    when `table.expand.json.payload` is off) as well as the expanded object."""
    if isinstance(value, dict):
        return value
    if value is None:
        raise MalformedEvent("empty payload")
    try:
        decoded = json.loads(value)
        if isinstance(decoded, str):
            decoded = json.loads(decoded)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEvent(f"payload is not JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise MalformedEvent(f"payload is a JSON {type(decoded).__name__}, not an object")
    return decoded


def _text_key(key: bytes | str | None) -> str:
    """Debezium's key is the aggregate id as a plain string (StringConverter); a JSON converter would
    quote it. Either way: the text inside."""
    if key is None:
        return ""
    text = key.decode(errors="replace") if isinstance(key, bytes) else str(key)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return str(json.loads(text))
        except ValueError:
            return text
    return text


def message_timestamp(msg: Message) -> dt.datetime | None:
    """When the broker (or the producer) stamped the message: the publish time, for consumer lag."""
    kind, millis = msg.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE or millis <= 0:
        return None
    return dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC)
