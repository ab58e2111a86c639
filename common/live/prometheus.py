"""Prometheus metrics every process of the shop shares: the request metrics the web process observes
(`observe_response`, called by `common.live.middleware`), `serve_process_metrics` for processes
without a web server of their own (the checkout consumer), and `CachedCollector` for gauges read at
scrape time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Request metrics under django-prometheus's names (its dashboards and ours keep working), observed by
# `common.live.middleware.LiveMetricsMiddleware` instead of django-prometheus's two middlewares, which
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


_served: set[int] = set()


def serve_process_metrics(port: int, addr: str) -> None:
    """This process's registry on http://addr:port/metrics (once per port; 0: none)."""
    if port and port not in _served:
        _served.add(port)
        start_http_server(port, addr=addr)
        log.info("metrics on http://%s:%d/metrics", addr, port)


class CachedCollector(Collector):
    """Gauges read at scrape time (from the database, Redis), kept `ttl` s so that several scrapers, or
    one scraping often, cost one read. Subclasses implement `read()`, which must not raise for a
    dependency that is down (a scrape must not fail): it logs and returns no families instead."""

    ttl = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: tuple[float, list[GaugeMetricFamily]] = (0.0, [])

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # values exist only at scrape time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            at, families = self._cached
            if time.monotonic() - at > self.ttl:
                families = self.read()
                self._cached = (time.monotonic(), families)
        yield from families

    def read(self) -> list[GaugeMetricFamily]:
        raise NotImplementedError
