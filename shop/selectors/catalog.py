"""Catalog reads: products, cursor pages, the popular list and the sales rankings.

Every read goes through the typed cache (shop.caches) when Redis answers and straight to the
database when it does not: slower, never an error. Only ACTIVE products are shown anywhere in the
storefront catalog; an inactive product's detail is 404 PRODUCT_NOT_FOUND like an unknown id.
"""

from __future__ import annotations

import logging
import time
from datetime import date, timedelta

from django.core.cache import caches
from django.db.models import Sum
from django.utils import timezone
from prometheus_client import Counter
from redis.exceptions import RedisError

from common.codecs import UNAVAILABLE, cache_read, cache_write
from common.pagination import cursor_page
from shop import rankings
from shop.caches import (
    DETAIL_TTL,
    PAGE_CODEC,
    PAGE_TTL,
    POPULAR,
    POPULAR_CODEC,
    POPULAR_STALE_KEY,
    POPULAR_STALE_TTL,
    POPULAR_TTL,
    PRODUCT_CODEC,
    RANKING_CODEC,
    RANKING_TTL,
    PopularItem,
    ProductData,
    ProductPage,
    RankingEntry,
    catalog_cached,
    catalog_generation,
    entry_key,
    near_cache,
    page_name,
    product_name,
    ranking_name,
    read_current,
    store,
)
from shop.errors import CategoryNotFound, ProductNotFound
from shop.models import Category, Product, SalesDaily

log = logging.getLogger(__name__)

ACTIVE = Product.Status.ACTIVE
PRODUCT_FIELDS = ("id", "name", "description", "price", "category_id")
POPULAR_DAYS = 3
POPULAR_MAX = 50  # the cached list holds the longest answer; `limit` slices it
RANKING_MAX = 50
POPULAR_LOCK = "lock:catalog-popular"
POPULAR_LOCK_SECONDS = 10
POPULAR_WAIT_SECONDS = 1.0

POPULAR_BUILDS = Counter(
    "catalog_popular_builds_total", "How popular-list misses were answered", ["source"]
)  # rebuilt | stale | waited | database


# --- products ------------------------------------------------------------------------------


def product_get(*, product_id: int) -> ProductData:
    return catalog_cached(PRODUCT_CODEC, product_name(product_id), lambda: _product_from_db(product_id), DETAIL_TTL)


def _product_from_db(product_id: int) -> ProductData:
    row = Product.objects.filter(pk=product_id, status=ACTIVE).values_list(*PRODUCT_FIELDS).first()
    if row is None:
        raise ProductNotFound()
    return ProductData(*row)


def product_page(*, category_id: int | None, last_id: int | None, size: int) -> ProductPage:
    """One cursor page (id ascending, `last_id` exclusive). Unknown category: 404 CATEGORY_NOT_FOUND."""
    return catalog_cached(
        PAGE_CODEC,
        page_name(category_id=category_id, last_id=last_id, size=size),
        lambda: _page_from_db(category_id, last_id, size),
        PAGE_TTL,
    )


def _page_from_db(category_id: int | None, last_id: int | None, size: int) -> ProductPage:
    products = Product.objects.filter(status=ACTIVE)
    if category_id is not None:
        products = products.filter(category_id=category_id)
    if last_id is not None:
        products = products.filter(pk__gt=last_id)
    rows = list(products.order_by("pk").values_list(*PRODUCT_FIELDS)[: size + 1])
    if not rows and category_id is not None and not Category.objects.filter(pk=category_id).exists():
        raise CategoryNotFound()
    page = cursor_page(rows, size, key=lambda row: row[0], render=lambda row: ProductData(*row))
    return ProductPage(contents=tuple(page["contents"]), last_id=page["lastId"])


# --- the popular list (stampede-protected) ---------------------------------------------------


def product_popular(*, limit: int) -> tuple[PopularItem, ...]:
    """Best sellers of the last `POPULAR_DAYS` days (today included), best first, ties by id."""
    return _popular_top()[:limit]


def _popular_top() -> tuple[PopularItem, ...]:
    items = near_cache.get(POPULAR)
    if items is not None:
        return items
    generation, items = read_current(POPULAR_CODEC, POPULAR)
    if items is not None:
        near_cache.put(POPULAR, items)
        return items
    if generation is None:
        POPULAR_BUILDS.labels("database").inc()
        return popular_from_db()
    return _popular_miss(generation)


def _popular_miss(generation: int) -> tuple[PopularItem, ...]:
    """One process rebuilds; the others serve the previous list, or wait briefly for the first one."""
    lock = caches["default"]
    try:
        acquired = lock.add(POPULAR_LOCK, 1, timeout=POPULAR_LOCK_SECONDS)
    except RedisError:
        UNAVAILABLE.labels("lock").inc()
        POPULAR_BUILDS.labels("database").inc()
        return popular_from_db()
    if acquired:
        try:
            # rebuilt by another process while we asked for the lock?
            items = cache_read(POPULAR_CODEC, entry_key(generation, POPULAR))
            if items is not None:
                return items
            POPULAR_BUILDS.labels("rebuilt").inc()
            return popular_refresh(generation)
        finally:
            try:
                lock.delete(POPULAR_LOCK)  # expires anyway; a rebuild outliving it costs one extra rebuild
            except RedisError:
                UNAVAILABLE.labels("delete").inc()
    stale = cache_read(POPULAR_CODEC, POPULAR_STALE_KEY)
    if stale is not None:
        POPULAR_BUILDS.labels("stale").inc()
        return stale
    deadline = time.monotonic() + POPULAR_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.02)
        items = cache_read(POPULAR_CODEC, entry_key(generation, POPULAR))
        if items is not None:
            POPULAR_BUILDS.labels("waited").inc()
            return items
    POPULAR_BUILDS.labels("database").inc()
    return popular_from_db()


def popular_refresh(generation: int | None = None) -> tuple[PopularItem, ...]:
    """Build the list from the database and store it (fresh and stale copies)."""
    generation = catalog_generation() if generation is None else generation
    items = popular_from_db()
    store(POPULAR_CODEC, generation, POPULAR, items, POPULAR_TTL)
    if generation is not None:
        cache_write(POPULAR_CODEC, POPULAR_STALE_KEY, items, POPULAR_STALE_TTL)
    return items


def popular_from_db(*, today: date | None = None) -> tuple[PopularItem, ...]:
    today = today or timezone.localdate()
    totals = list(
        SalesDaily.objects.filter(
            day__gte=today - timedelta(days=POPULAR_DAYS - 1), day__lte=today, product__status=ACTIVE
        )
        .values("product_id")
        .annotate(total=Sum("quantity"))
        .filter(total__gt=0)
        .order_by("-total", "product_id")
        .values_list("product_id", "total")[:POPULAR_MAX]
    )
    products = {
        row[0]: row for row in Product.objects.filter(pk__in=[t[0] for t in totals]).values_list(*PRODUCT_FIELDS)
    }
    return tuple(PopularItem(*products[pid], sales_count=int(total)) for pid, total in totals if pid in products)


# --- rankings ------------------------------------------------------------------------------


def ranking_list(*, period: str, limit: int) -> tuple[RankingEntry, ...]:
    """Daily (today), weekly (the 7 days ending today) or total ranking, best first, ties by id."""
    today = timezone.localdate()
    entries = catalog_cached(
        RANKING_CODEC, ranking_name(period, today), lambda: _ranking_build(period, today), RANKING_TTL
    )
    return entries[:limit]


def _ranking_build(period: str, today: date) -> tuple[RankingEntry, ...]:
    try:
        scores = rankings.top(period=period, limit=RANKING_MAX, today=today)
    except (RedisError, rankings.RankingsNotReady) as exc:
        log.info("rankings from the database (%s)", type(exc).__name__)
        scores = ranking_scores_from_db(period=period, limit=RANKING_MAX, today=today)
    names = dict(Product.objects.filter(pk__in=[pid for pid, _ in scores], status=ACTIVE).values_list("id", "name"))
    entries: list[RankingEntry] = []
    for product_id, count in scores:
        if product_id in names:  # deactivated since the last re-sync
            entries.append(RankingEntry(len(entries) + 1, product_id, names[product_id], count))
    return tuple(entries)


def ranking_scores_from_db(*, period: str, limit: int, today: date) -> list[tuple[int, int]]:
    """The same figures as the Redis sets (see shop.rankings), computed by the database."""
    rows = SalesDaily.objects.filter(product__status=ACTIVE)
    if period == "daily":
        rows = rows.filter(day=today, quantity__gt=0)
    elif period == "weekly":
        rows = rows.filter(day__gte=today - timedelta(days=rankings.WEEK_DAYS - 1), day__lte=today, quantity__gt=0)
    totals = (
        rows.values("product_id")
        .annotate(total=Sum("quantity"))
        .filter(total__gt=0)
        .order_by("-total", "product_id")
        .values_list("product_id", "total")[:limit]
    )
    return [(pid, int(total)) for pid, total in totals]


def product_rank_today(*, product_id: int) -> RankingEntry:
    """Today's rank of one product (rank 0 and count 0 when it sold nothing today)."""
    product = product_get(product_id=product_id)
    today = timezone.localdate()
    try:
        rank, count = rankings.position(product_id=product_id, today=today)
    except (RedisError, rankings.RankingsNotReady):
        rank, count = _position_from_db(product_id, today)
    return RankingEntry(rank=rank, product_id=product.id, product_name=product.name, sales_count=count)


def _position_from_db(product_id: int, today: date) -> tuple[int, int]:
    rows = SalesDaily.objects.filter(day=today, quantity__gt=0, product__status=ACTIVE)
    count = rows.filter(product_id=product_id).values_list("quantity", flat=True).first()
    if count is None:
        return 0, 0
    better = rows.filter(quantity__gt=count).count() + rows.filter(quantity=count, product_id__lt=product_id).count()
    return better + 1, count
