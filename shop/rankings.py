"""Sales rankings in Redis sorted sets, rebuildable from `SalesDaily` (the source of truth).

Keys (in the "default" cache namespace, so tests and deployments stay apart):
    rank:daily:<YYYY-MM-DD>   member = product id, score = quantity sold that day (kept ~8 days)
    rank:total                all-time quantity per product
    rank:weekly:<YYYY-MM-DD>  union of the 7 daily sets ending that day (a 10 s scratch key)
    rank:ready                set by a rebuild: the sets above hold the whole table

Only ACTIVE products with a positive count are members; a product change re-syncs that product
(`sync_product`). Increments (`bump`) run after the sale's transaction commits and are applied only
when `rank:ready` exists; readers rebuild lazily (one process at a time) when it does not, e.g.
after a Redis restart or on a fresh deployment. The sets are a cache of the table: an increment
racing a rebuild or a product re-sync within the same milliseconds can be lost or counted twice,
and `manage.py rebuild_rankings` repairs that.

Order: by count, best first; ties by product id ascending (the list and a product's own rank agree).
All functions may raise `RedisError`; callers fall back to the database.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dt_time

from django.core.cache import caches
from django.db.models import Sum
from django.utils import timezone
from django_redis import get_redis_connection
from redis import Redis

from shop.models import Product, SalesDaily

log = logging.getLogger(__name__)

PERIODS = ("daily", "weekly", "total")
WEEK_DAYS = 7
DAILY_KEEP_DAYS = WEEK_DAYS + 1
REBUILD_LOCK = "lock:rankings-rebuild"
REBUILD_LOCK_SECONDS = 60
READY_WAIT_SECONDS = 2.0


class RankingsNotReady(Exception):
    """Another process is rebuilding and did not finish in time: read from the database."""


@dataclass(frozen=True)
class RebuildStats:
    daily_sets: int
    members: int


def _redis() -> Redis:
    return get_redis_connection("default")


def _key(name: str) -> str:
    return caches["default"].make_key(f"rank:{name}")


def daily_key(day: date) -> str:
    return _key(f"daily:{day.isoformat()}")


def total_key() -> str:
    return _key("total")


def ready_key() -> str:
    return _key("ready")


def _window(today: date) -> list[date]:
    """The days whose daily sets exist: the weekly window ending today."""
    return [today - timedelta(days=n) for n in range(WEEK_DAYS)]


def _daily_expire_at(day: date) -> int:
    end = datetime.combine(day + timedelta(days=DAILY_KEEP_DAYS), dt_time.min, tzinfo=timezone.get_current_timezone())
    return int(end.timestamp())


# --- writing -------------------------------------------------------------------------------

# KEYS: ready marker, then the sets to increment; ARGV: quantity, member, expire-at for KEYS[3] (or 0).
_BUMP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 2, #KEYS do
  local score = tonumber(redis.call('ZINCRBY', KEYS[i], ARGV[1], ARGV[2]))
  if score <= 0 then redis.call('ZREM', KEYS[i], ARGV[2]) end
end
if #KEYS >= 3 and ARGV[3] ~= '0' then redis.call('EXPIREAT', KEYS[3], ARGV[3]) end
return 1
"""


def bump(*, product_id: int, quantity: int, day: date) -> bool:
    """Add a committed sale to the sets. False when they are not built yet (a rebuild will count it)."""
    return bump_many(sales=[(product_id, day, quantity)])[0]


def bump_many(*, sales: list[tuple[int, date, int]]) -> list[bool]:
    """`bump` for several committed sales (product id, day, quantity), in one round trip."""
    window = _window(timezone.localdate())
    pipe = _redis().pipeline(transaction=False)
    for product_id, day, quantity in sales:
        keys = [ready_key(), total_key()]
        expire_at = 0
        if day in window:
            keys.append(daily_key(day))
            expire_at = _daily_expire_at(day)
        pipe.eval(_BUMP, len(keys), *keys, quantity, product_id, expire_at)
    return [bool(result) for result in pipe.execute()]


def sync_product(*, product_id: int) -> None:
    """Rewrite one product's scores from the table (after it was changed, e.g. deactivated)."""
    r = _redis()
    if not r.exists(ready_key()):
        return
    today = timezone.localdate()
    active = Product.objects.filter(pk=product_id, status=Product.Status.ACTIVE).exists()
    rows = SalesDaily.objects.filter(product_id=product_id)
    daily = dict(rows.filter(day__gte=today - timedelta(days=WEEK_DAYS - 1)).values_list("day", "quantity"))
    total = rows.aggregate(q=Sum("quantity"))["q"] or 0
    pipe = r.pipeline(transaction=True)
    for day in _window(today):
        _set_score(pipe, daily_key(day), product_id, daily.get(day, 0) if active else 0)
        pipe.expireat(daily_key(day), _daily_expire_at(day))
    _set_score(pipe, total_key(), product_id, total if active else 0)
    pipe.execute()


def _set_score(pipe, key: str, product_id: int, score: int) -> None:
    if score > 0:
        pipe.zadd(key, {str(product_id): score})
    else:
        pipe.zrem(key, str(product_id))


def rebuild(*, today: date | None = None) -> RebuildStats:
    """Recompute every set from the table and swap them in atomically."""
    today = today or timezone.localdate()
    active = SalesDaily.objects.filter(product__status=Product.Status.ACTIVE)
    daily: dict[date, dict[str, int]] = defaultdict(dict)
    since = today - timedelta(days=WEEK_DAYS - 1)
    for day, product_id, quantity in active.filter(day__gte=since, day__lte=today, quantity__gt=0).values_list(
        "day", "product_id", "quantity"
    ):
        daily[day][str(product_id)] = quantity
    total = {
        str(product_id): quantity
        for product_id, quantity in active.values("product_id")
        .annotate(q=Sum("quantity"))
        .filter(q__gt=0)
        .values_list("product_id", "q")
    }
    r = _redis()
    token = uuid.uuid4().hex
    targets = {daily_key(day): daily.get(day, {}) for day in _window(today)}
    targets[total_key()] = total
    for target, members in targets.items():  # fill scratch keys first, outside the swap
        if members:
            r.zadd(f"{target}:rebuild:{token}", members)
    pipe = r.pipeline(transaction=True)
    for target, members in targets.items():
        if members:
            pipe.rename(f"{target}:rebuild:{token}", target)
        else:
            pipe.delete(target)
    for day in _window(today):
        pipe.expireat(daily_key(day), _daily_expire_at(day))
    pipe.set(ready_key(), int(time.time()))
    pipe.execute()
    stats = RebuildStats(daily_sets=sum(1 for d in daily if d in _window(today)), members=len(total))
    log.info("rankings rebuilt: %s", stats)
    return stats


def ensure_ready(r: Redis) -> None:
    """Rebuild once if the sets were never built (or Redis lost them); others wait briefly."""
    if r.exists(ready_key()):
        return
    lock = caches["default"]
    if lock.add(REBUILD_LOCK, 1, timeout=REBUILD_LOCK_SECONDS):
        try:
            rebuild()
        finally:
            lock.delete(REBUILD_LOCK)
        return
    deadline = time.monotonic() + READY_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.02)
        if r.exists(ready_key()):
            return
    raise RankingsNotReady()


# --- reading -------------------------------------------------------------------------------


def _period_key(r: Redis, period: str, today: date) -> str:
    if period == "daily":
        return daily_key(today)
    if period == "total":
        return total_key()
    weekly = _key(f"weekly:{today.isoformat()}")
    pipe = r.pipeline(transaction=True)
    pipe.zunionstore(weekly, [daily_key(day) for day in _window(today)])
    pipe.expire(weekly, 10)
    pipe.execute()
    return weekly


def top(*, period: str, limit: int, today: date | None = None) -> list[tuple[int, int]]:
    """[(product id, count)] best first, ties by product id."""
    today = today or timezone.localdate()
    r = _redis()
    ensure_ready(r)
    key = _period_key(r, period, today)
    rows = [(int(m), int(s)) for m, s in r.zrevrange(key, 0, limit - 1, withscores=True)]
    if len(rows) < limit:
        return sorted(rows, key=lambda row: (-row[1], row[0]))
    # Redis orders equal scores by member, as strings: settle the ties at the cut by id.
    boundary = rows[-1][1]
    above = sorted((row for row in rows if row[1] > boundary), key=lambda row: (-row[1], row[0]))
    tied = sorted(int(m) for m in r.zrangebyscore(key, boundary, boundary))
    return above + [(product_id, boundary) for product_id in tied[: limit - len(above)]]


def position(*, product_id: int, today: date | None = None) -> tuple[int, int]:
    """(rank, count) of a product today; (0, 0) when it sold nothing today."""
    today = today or timezone.localdate()
    r = _redis()
    ensure_ready(r)
    key = daily_key(today)
    score = r.zscore(key, str(product_id))
    if score is None:
        return 0, 0
    pipe = r.pipeline(transaction=False)
    pipe.zcount(key, f"({score}", "+inf")
    pipe.zrangebyscore(key, score, score)
    better, tied = pipe.execute()
    return better + sum(1 for m in tied if int(m) < product_id) + 1, int(score)


def snapshot(*, today: date | None = None) -> dict[str, dict[int, int]]:
    """Every set's content ({key name: {product id: count}}), for checks and the rebuild command."""
    today = today or timezone.localdate()
    r = _redis()
    names = {f"daily:{day.isoformat()}": daily_key(day) for day in _window(today)} | {"total": total_key()}
    return {name: {int(m): int(s) for m, s in r.zrange(key, 0, -1, withscores=True)} for name, key in names.items()}
