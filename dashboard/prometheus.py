"""Prometheus side of the dashboard's figures, for Grafana (docker/grafana): the checkout consumer's
answers (a counter in that process, served on CHECKOUT_CONSUMER_METRICS_PORT) and, in the web
process, gauges read at scrape time from the same selectors as the dashboard (cached a few seconds)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from django.conf import settings
from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

QUEUE_ANSWERS = Counter("shop_queue_answers_total", "Flash-sale queue requests answered", ["result"])

# Request metrics under django-prometheus's names (its dashboards and ours keep working), observed by
# `dashboard.middleware.LiveMetricsMiddleware` instead of django-prometheus's two middlewares, which
# cost ~0.3 ms of CPU per request (docs/REPORT.md): label children are resolved once and kept.
RESPONSES = Counter(
    "django_http_responses_total_by_status_view_method", "Responses by status, view and method",
    ["status", "view", "method"],
)  # fmt: skip
RESPONSES_BY_STATUS = Counter("django_http_responses_total_by_status", "Responses by status", ["status"])
LATENCY = Histogram(
    "django_http_requests_latency_seconds_by_view_method", "Request latency by view and method", ["view", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 25.0, float("inf")),
)  # fmt: skip
_children: dict[tuple[str, str, int], tuple] = {}


def observe_response(view: str, method: str, status: int, seconds: float) -> None:
    """Count one response and its latency (a dict lookup and two increments once the labels are known)."""
    key = (view, method, status)
    children = _children.get(key)
    if children is None:
        code = str(status)
        children = (
            RESPONSES.labels(code, view, method),
            RESPONSES_BY_STATUS.labels(code),
            LATENCY.labels(view, method),
        )
        _children[key] = children
    responses, by_status, latency = children
    responses.inc()
    by_status.inc()
    latency.observe(seconds)


class SaleCollector(Collector):
    """Flash stock, sold-out flags, queue depth and consumer lag per partition (cached `ttl` s)."""

    ttl = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: tuple[float, list[GaugeMetricFamily]] = (0.0, [])

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            at, families = self._cached
            if time.monotonic() - at > self.ttl:
                families = self._read()
                self._cached = (time.monotonic(), families)
        yield from families

    def _read(self) -> list[GaugeMetricFamily]:
        from dashboard.selectors import partitions, products

        try:
            rows = products()
            parts = partitions()
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because a dependency is down
            log.warning("sale metrics: %s", exc)
            return []
        stock = GaugeMetricFamily("shop_flash_stock_units", "Flash product units by state", labels=["product", "state"])
        flag = GaugeMetricFamily("shop_flash_sold_out", "1 while the product is flagged sold out", labels=["product"])
        paused = GaugeMetricFamily("shop_flash_queue_paused", "1 while the queue is paused", labels=["product"])
        depth = GaugeMetricFamily("shop_queue_depth", "QUEUED requests", labels=["product"])
        oldest = GaugeMetricFamily("shop_queue_oldest_seconds", "Age of the oldest QUEUED request", labels=["product"])
        for row in rows:
            pid = str(row["id"])
            for state in ("remaining", "reserved", "sold"):
                if row[state] is not None:
                    stock.add_metric([pid, state], row[state])
            flag.add_metric([pid], 1 if row["soldOutFlag"] else 0)
            paused.add_metric([pid], 1 if row["paused"] else 0)
            depth.add_metric([pid], row["queueDepth"])
            oldest.add_metric([pid], row["oldestQueuedSeconds"] or 0)
        lag = GaugeMetricFamily(
            "shop_queue_consumer_lag_seconds",
            "How long the last message handled on the partition had waited",
            labels=["partition"],
        )
        idle = GaugeMetricFamily(
            "shop_queue_consumer_idle_seconds", "Seconds since the partition's last handled batch", labels=["partition"]
        )
        for part in parts:
            if part["lagSeconds"] is not None:
                lag.add_metric([str(part["partition"])], part["lagSeconds"])
            idle.add_metric([str(part["partition"])], part["handledAgoSeconds"])
        return [stock, flag, paused, depth, oldest, lag, idle]


_registered = False


def register_collector() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(SaleCollector())
        _registered = True


_served = False


def serve_consumer_metrics() -> None:
    """The checkout consumer's own /metrics, when CHECKOUT_CONSUMER_METRICS_PORT is set (once)."""
    global _served
    port = settings.CHECKOUT_CONSUMER_METRICS_PORT
    if port and not _served:
        _served = True
        start_http_server(port, addr=settings.CHECKOUT_CONSUMER_METRICS_ADDR)
        log.info("checkout consumer metrics on http://%s:%d/metrics", settings.CHECKOUT_CONSUMER_METRICS_ADDR, port)
