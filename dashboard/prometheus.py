"""Prometheus side of the dashboard's figures, for Grafana (docker/grafana): in the web process, gauges
read at scrape time from the same selectors as the dashboard (cached a few seconds). The request
metrics are `common.live.prometheus`'s, the checkout consumer's answers `orders.queue.metrics`'."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

from common.live.prometheus import CachedCollector

log = logging.getLogger(__name__)


class SaleCollector(CachedCollector):
    """Flash stock, sold-out flags, queue depth and consumer lag per partition (cached `ttl` s)."""

    def read(self) -> list[GaugeMetricFamily]:
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
