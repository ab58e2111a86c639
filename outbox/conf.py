"""Outbox settings: `config/settings.py` may set them; otherwise the environment variable of the same
name; otherwise the default here."""

from __future__ import annotations

import os

from django.conf import settings

DEFAULTS: dict[str, int | float | str] = {
    # Fallback: apply events the inbox has not recorded this many seconds after their creation.
    "OUTBOX_FALLBACK_AFTER_SECONDS": 30,
    # ... and look this far behind its watermark again (a transaction that committed late).
    "OUTBOX_FALLBACK_REWIND_SECONDS": 120,
    "OUTBOX_FALLBACK_BATCH": 500,
    # Purge: outbox rows older than this that every consumer step recorded.
    "OUTBOX_PURGE_AFTER_DAYS": 7,
    # Inbox purge: processed-event records older than this. Must exceed the broker's retention of the
    # events (Kafka's default is 7 days): a redelivered event whose record is gone is applied again.
    "OUTBOX_INBOX_RETENTION_DAYS": 14,
    # Consumer: attempts before a message goes to the dead letters.
    "OUTBOX_MAX_ATTEMPTS": 5,
    # Relay: replication client id (unique among the server's replicas; 0 = derived from the pid).
    "OUTBOX_RELAY_SERVER_ID": 0,
    "OUTBOX_RELAY_HEARTBEAT_SECONDS": 0.5,
    "OUTBOX_RELAY_CHECKPOINT_SECONDS": 0.2,
    "OUTBOX_RELAY_DELIVERY_TIMEOUT_MS": 30_000,
    "OUTBOX_RELAY_METRICS_PORT": 0,
    "OUTBOX_CONSUMER_METRICS_PORT": 0,
    "OUTBOX_METRICS_ADDR": "127.0.0.1",
    # /readyz warns when an outbox event has waited longer than this for the relay.
    "OUTBOX_RELAY_LAG_WARN_SECONDS": 30,
    "CDC_DB_USER": "cdc",
    "CDC_DB_PASSWORD": "cdc",
}


def setting(name: str) -> int | float | str:
    default = DEFAULTS[name]
    if hasattr(settings, name):
        return getattr(settings, name)
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return type(default)(raw)


def setting_int(name: str) -> int:
    return int(setting(name))


def setting_float(name: str) -> float:
    return float(setting(name))
