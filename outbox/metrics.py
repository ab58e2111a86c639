"""Outbox metrics and the relay-lag readiness warning.

Two kinds:
- per process (the relay's and the consumer's own timings): `RELAY_LAG`, `CONSUMER_LAG`, counters.
  The relay serves them itself (`outbox_relay --metrics-port`, or OUTBOX_RELAY_METRICS_PORT); the
  consumer when OUTBOX_CONSUMER_METRICS_PORT is set. Histograms are cumulative: scrape each process.
- read from the database at scrape time, so the web process's `/metrics` shows them whoever did the
  work (relay, Debezium, consumer, fallback): `OutboxStateCollector`, cached a few seconds.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from common.live.prometheus import CachedCollector
from outbox.selectors import outbox_state, relay_pending_seconds

log = logging.getLogger(__name__)

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

RELAY_LAG = Histogram(
    "outbox_relay_lag_seconds", "Outbox row created (in its transaction) -> broker acknowledged", buckets=LAG_BUCKETS
)
RELAY_EVENTS = Counter("outbox_relay_events_total", "Outbox rows the relay published", ["result"])
RELAY_RESTARTS = Counter("outbox_relay_restarts_total", "Relay stream restarts from the checkpoint", ["reason"])
RELAY_LEADER = Gauge("outbox_relay_leader", "1 while this relay holds the single-relay lock")
CONSUMER_LAG = Histogram(
    "outbox_consumer_lag_seconds", "Message published (Kafka timestamp) -> event applied", buckets=LAG_BUCKETS
)
EVENTS = Counter("outbox_events_total", "Outbox events handled", ["source", "result"])
DEAD_LETTERED = Counter("outbox_dead_lettered_total", "Messages moved to the dead letters", ["consumer"])
FALLBACK_APPLIED = Counter("outbox_fallback_events_total", "Events the fallback applied", ["result"])


class OutboxStateCollector(CachedCollector):
    """Gauges read from the database: relay backlog, oldest unapplied event, dead letters."""

    def read(self) -> list[GaugeMetricFamily]:
        try:
            state = outbox_state()
        except DatabaseError as exc:
            log.warning("outbox metrics: %s", exc)
            return []
        families = []
        for name, doc, value in (
            ("outbox_relay_pending_seconds", "Age of the oldest outbox row the relay has not published", state.relay),
            (
                "outbox_oldest_unapplied_event_age_seconds",
                "Age of the oldest outbox event the outbox consumer has not applied",
                state.unapplied,
            ),
            ("outbox_dead_letters", "Dead letters not replayed yet", state.dead_letters),
        ):
            if value is not None:
                families.append(GaugeMetricFamily(name, doc, value=value))
        return families


def relay_lag_warning() -> str | None:
    """A /readyz warning when an outbox row has waited for the relay longer than the limit."""
    pending = relay_pending_seconds()
    limit = settings.OUTBOX_RELAY_LAG_WARN_SECONDS
    if pending is not None and pending > limit:
        return f"outbox relay is {pending:.0f} s behind (limit {limit:.0f} s); the fallback applies events meanwhile"
    return None


COLLECTOR = OutboxStateCollector()
_installed = False


def install() -> None:
    """Register the database gauges on the default registry and the readiness warning (once)."""
    global _installed
    if _installed:
        return
    _installed = True
    from common.health import WARNINGS

    REGISTRY.register(COLLECTOR)
    WARNINGS["outbox_relay"] = relay_lag_warning


def serve_metrics(setting_name: str, port: int | None = None) -> None:
    """Serve this process's registry on `port` (or the setting) if one is given."""
    port = port if port is not None else getattr(settings, setting_name)
    if port:
        addr = settings.OUTBOX_METRICS_ADDR
        start_http_server(port, addr=addr)
        log.info("metrics on http://%s:%d/metrics", addr, port)
