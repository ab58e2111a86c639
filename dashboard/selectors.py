"""Everything the sale dashboard shows, read in bounded, cheap steps (one refresh = `sale_snapshot`).

- flash products: one query (stock rows joined) + one Redis MGET (`orders.flash_stock`);
- queue depth and oldest QUEUED request: one GROUP BY served by the (product, status, id) index,
  plus one primary-key read of the oldest rows when anything is queued;
- units sold (SUM of CONSUMED reservations): the one read that grows with the sale, so it is shared
  by every refresh through Redis for SOLD_TTL seconds;
- relay and outbox-consumer lag (`outbox.metrics.outbox_state`), shared the same way for PIPELINE_TTL;
- rates and latency: the recorder's per-second buckets (`common.live.recorder`), one pipeline of
  HGETALL: the last SUMMARY_SECONDS always, and the seconds after `since` for the charts;
- consumer progress per partition and the auditor's last result: one Redis read each.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.core.cache import caches
from django.db.models import Count, Min, Sum
from django.utils import timezone
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from common.live.progress import progress_read
from common.live.recorder import LATENCY_BOUNDS_MS, read_buckets
from inventory.models import Reservation
from orders.flash_stock import flash_stock_rows
from orders.models import FlashSaleControl, QueueRequest

log = logging.getLogger(__name__)

SUMMARY_SECONDS = 60
WINDOW_SECONDS = 300  # the charts' span
SETTLE_SECONDS = 3  # a second's bucket is complete once every process flushed it (each flushes every 1 s)
SOLD_TTL = 10
PIPELINE_TTL = 5
LATENCY_GROUPS = ("checkout", "queue", "payment")


def _shared(name: str, ttl: int, compute: Callable[[], Any]) -> Any:
    """`compute()`, shared by every process through Redis for `ttl` seconds (computed again when
    Redis is down)."""
    key = caches["default"].make_key(f"dashboard:{name}")
    redis = get_redis_connection("default")
    try:
        cached = redis.get(key)
        if cached is not None:
            return json.loads(cached)
    except RedisError:
        return compute()
    value = compute()
    try:
        redis.set(key, json.dumps(value), ex=ttl)
    except RedisError:
        pass
    return value


def _sold(product_ids: list[int]) -> dict[str, int]:
    rows = (
        Reservation.objects.filter(product_id__in=product_ids, status=Reservation.Status.CONSUMED)
        .values("product_id")
        .annotate(units=Sum("quantity"))
    )
    return {str(row["product_id"]): int(row["units"]) for row in rows}


def products() -> list[dict[str, Any]]:
    rows = flash_stock_rows(active_only=False)
    ids = [row["productId"] for row in rows]
    if not ids:
        return []
    paused = set(FlashSaleControl.objects.filter(product_id__in=ids, paused=True).values_list("product_id", flat=True))
    queued = {
        row["product_id"]: row
        for row in QueueRequest.objects.filter(product_id__in=ids, status=QueueRequest.Status.QUEUED)
        .values("product_id")
        .annotate(n=Count("id"), first=Min("id"))
        .order_by()
    }
    oldest = {}
    if queued:
        oldest = dict(
            QueueRequest.objects.filter(pk__in=[row["first"] for row in queued.values()]).values_list(
                "product_id", "created_at"
            )
        )
    sold = _shared("sold:" + ",".join(map(str, ids)), SOLD_TTL, lambda: _sold(ids))
    now = timezone.now()
    return [
        {
            "id": row["productId"],
            "name": row["name"],
            "remaining": row["available"],
            "reserved": row["reserved"],
            "sold": sold.get(str(row["productId"]), 0),
            "soldOutFlag": row["soldOutFlag"],
            "paused": row["productId"] in paused,
            "queueDepth": queued[row["productId"]]["n"] if row["productId"] in queued else 0,
            "oldestQueuedSeconds": (
                round((now - oldest[row["productId"]]).total_seconds(), 1) if row["productId"] in oldest else None
            ),
            "lastPosition": row["lastPosition"],
            "served": row["served"],
        }
        for row in rows
    ]


def partitions() -> list[dict[str, Any]]:
    try:
        found = progress_read("checkout")
    except RedisError:
        return []
    return [
        {
            "topic": p.topic,
            "partition": p.partition,
            "offset": p.offset,
            "lagSeconds": round(p.lag_seconds, 3) if p.lag_seconds is not None else None,
            "handledAgoSeconds": round(p.handled_ago_seconds, 1),
        }
        for p in found
    ]


def _pipeline_state() -> dict[str, Any]:
    from outbox.selectors import outbox_state

    state = outbox_state()
    return {
        "relayPendingSeconds": round(state.relay, 1) if state.relay is not None else None,
        "outboxUnappliedSeconds": round(state.unapplied, 1),
        "deadLetters": state.dead_letters,
    }


def pipeline() -> dict[str, Any]:
    return _shared("pipeline", PIPELINE_TTL, _pipeline_state)


def audit() -> dict[str, Any] | None:
    from common.audit import LAST_META_KEY, LAST_RESULT_KEY

    cache = caches["default"]
    try:
        found = cache.get_many([LAST_RESULT_KEY, LAST_META_KEY])
    except RedisError:
        return None
    checks, meta = found.get(LAST_RESULT_KEY), found.get(LAST_META_KEY)
    if checks is None:
        return None
    meta = meta or {}
    at = meta.get("at")
    return {
        "at": at,
        "ageSeconds": round(time.time() - at, 1) if at else None,
        "seconds": meta.get("seconds"),
        "ok": not any(checks.values()),
        "checks": checks,
    }


# --- rates and latency ---------------------------------------------------------------------------


def _quantile(histogram: list[int], q: float) -> float | None:
    """The q-quantile (ms) of a bucket histogram, interpolated inside its bucket."""
    total = sum(histogram)
    if not total:
        return None
    rank, seen = q * total, 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            low = LATENCY_BOUNDS_MS[index - 1] if index > 0 else 0
            high = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else low * 2
            return round(low + (high - low) * (rank - seen) / count, 2)
        seen += count
    return None


def _histogram(bucket: dict[str, int], group: str) -> list[int]:
    return [bucket.get(f"{group}:l{i}", 0) for i in range(len(LATENCY_BOUNDS_MS) + 1)]


def _refusals(bucket: dict[str, int]) -> int:
    return sum(v for k, v in bucket.items() if k.startswith(("refused:", "failed:")))


def _errors(bucket: dict[str, int]) -> int:
    return sum(v for k, v in bucket.items() if k.endswith(":5xx"))


def _orders(bucket: dict[str, int]) -> int:
    return bucket.get("orders:queue", 0) + bucket.get("checkout:2xx", 0)


def rates(*, since: int | None = None, now: float | None = None) -> dict[str, Any]:
    """Per-second series after `since` (at most WINDOW_SECONDS) and the last minute's summary."""
    end = int(now if now is not None else time.time()) - SETTLE_SECONDS  # the newest complete second
    start = end - WINDOW_SECONDS + 1
    if since is not None:
        start = max(start, min(since + 1, end + 1))
    summary_start = end - SUMMARY_SECONDS + 1
    try:
        buckets = read_buckets(range(min(start, summary_start), end + 1))
    except RedisError:
        return {"until": end, "series": None, "lastMinute": None}
    seconds = list(range(start, end + 1))
    empty: dict[str, int] = {}
    series: dict[str, list] = {"t": seconds}
    series["orders"] = [_orders(buckets.get(s, empty)) for s in seconds]
    series["payments"] = [buckets.get(s, empty).get("payment:2xx", 0) for s in seconds]
    series["refusals"] = [_refusals(buckets.get(s, empty)) for s in seconds]
    series["errors5xx"] = [_errors(buckets.get(s, empty)) for s in seconds]
    for group in LATENCY_GROUPS:
        hists = [_histogram(buckets.get(s, empty), group) for s in seconds]
        series[f"{group}P50"] = [_quantile(h, 0.5) for h in hists]
        series[f"{group}P95"] = [_quantile(h, 0.95) for h in hists]

    minute = [buckets.get(s, empty) for s in range(summary_start, end + 1)]
    codes: dict[str, int] = {}
    for bucket in minute:
        for key, value in bucket.items():
            if key.startswith(("refused:", "failed:")):
                code = key.split(":", 1)[1]
                codes[code] = codes.get(code, 0) + value
    latency = {}
    for group in LATENCY_GROUPS:
        total = [sum(column) for column in zip(*(_histogram(b, group) for b in minute), strict=True)] if minute else []
        latency[group] = {"count": sum(total), "p50": _quantile(total, 0.5), "p95": _quantile(total, 0.95)}
    last_minute = {
        "seconds": SUMMARY_SECONDS,
        "ordersPerSecond": round(sum(map(_orders, minute)) / SUMMARY_SECONDS, 2),
        "paymentsPerSecond": round(sum(b.get("payment:2xx", 0) for b in minute) / SUMMARY_SECONDS, 2),
        "refusalsPerSecond": round(sum(map(_refusals, minute)) / SUMMARY_SECONDS, 2),
        "errors5xx": sum(map(_errors, minute)),
        "requests": sum(v for b in minute for k, v in b.items() if k.endswith(":n")),
        "refusalsByCode": dict(sorted(codes.items(), key=lambda item: -item[1])),
        "latencyMs": latency,
    }
    return {"until": end, "series": series, "lastMinute": last_minute}


def sale_snapshot(*, since: int | None = None) -> dict[str, Any]:
    """One dashboard refresh."""
    return {
        "now": round(time.time(), 3),
        "products": products(),
        "partitions": partitions(),
        "rates": rates(since=since),
        "pipeline": pipeline(),
        "audit": audit(),
    }
