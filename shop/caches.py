"""What the catalog caches, and how: typed shapes, their versioned codecs, keys and lifetimes.

Every cached catalog shape is a frozen dataclass with an explicit `Codec` (common.codecs): a hit
decodes into exactly the dataclass a miss builds, and the wire format is checked field by field, so
an entry of another shape, another version or with a wrong field is a miss, never an error
(incident 1). Keys carry no schema version on purpose: after a deploy the new code *reads* the
old entry, rejects it as a miss and overwrites it.

Invalidation. Every key derived from products carries the catalog *generation*, a counter in the
"default" cache bumped after any product or category change commits (`catalog_generation_bump`).
A reader reads the generation before it queries the database, so an entry built from rows older
than a change can only land under the old generation, which nobody reads any more. Sales do not
change products; they delete the popular and ranking entries of the current generation
(`sales_caches_invalidate`). If Redis is down the generation is None and readers go to the
database directly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.core.cache import caches
from redis.exceptions import RedisError

from common.codecs import UNAVAILABLE, Codec, cache_delete

log = logging.getLogger(__name__)

# Lifetimes (seconds). Changes invalidate explicitly; the TTLs only bound what a lost
# invalidation (Redis briefly down at the moment of a change) can leave behind.
DETAIL_TTL = 300
PAGE_TTL = 30
POPULAR_TTL = 90  # the beat task re-warms it every 60 s, so readers normally never miss
POPULAR_STALE_TTL = 3600  # the "previous value" served while one process rebuilds
RANKING_TTL = 10

GENERATION_KEY = "catalog:generation"
POPULAR_STALE_KEY = "catalog:popular:stale"


# --- shapes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProductData:
    id: int
    name: str
    description: str
    price: int
    category_id: int


@dataclass(frozen=True, slots=True)
class PopularItem(ProductData):
    sales_count: int


@dataclass(frozen=True, slots=True)
class ProductPage:
    contents: tuple[ProductData, ...]
    last_id: int | None


@dataclass(frozen=True, slots=True)
class RankingEntry:
    rank: int
    product_id: int
    product_name: str
    sales_count: int


# --- strict wire helpers: anything unexpected raises, and the codec turns that into a miss ---


def _int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"expected int, got {type(value).__name__}")
    return value


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _str(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"expected str, got {type(value).__name__}")
    return value


def _fields(data: Any, names: frozenset[str]) -> dict[str, Any]:
    if not isinstance(data, dict) or data.keys() != names:
        raise ValueError(f"expected fields {sorted(names)}")
    return data


def _items(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise TypeError("expected a list")
    return data


_PRODUCT_FIELDS = frozenset({"id", "name", "description", "price", "categoryId"})
_POPULAR_FIELDS = _PRODUCT_FIELDS | {"salesCount"}
_PAGE_FIELDS = frozenset({"contents", "lastId"})
_RANKING_FIELDS = frozenset({"rank", "productId", "productName", "salesCount"})


def _product_to_wire(p: ProductData) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "description": p.description, "price": p.price, "categoryId": p.category_id}


def _product_from_wire(data: Any) -> ProductData:
    d = _fields(data, _PRODUCT_FIELDS)
    return ProductData(
        id=_int(d["id"]), name=_str(d["name"]), description=_str(d["description"]),
        price=_int(d["price"]), category_id=_int(d["categoryId"]),
    )  # fmt: skip


def _popular_to_wire(items: tuple[PopularItem, ...]) -> list[dict[str, Any]]:
    return [{**_product_to_wire(i), "salesCount": i.sales_count} for i in items]


def _popular_from_wire(data: Any) -> tuple[PopularItem, ...]:
    out = []
    for raw in _items(data):
        d = _fields(raw, _POPULAR_FIELDS)
        out.append(PopularItem(
            id=_int(d["id"]), name=_str(d["name"]), description=_str(d["description"]),
            price=_int(d["price"]), category_id=_int(d["categoryId"]), sales_count=_int(d["salesCount"]),
        ))  # fmt: skip
    return tuple(out)


def _page_to_wire(page: ProductPage) -> dict[str, Any]:
    return {"contents": [_product_to_wire(p) for p in page.contents], "lastId": page.last_id}


def _page_from_wire(data: Any) -> ProductPage:
    d = _fields(data, _PAGE_FIELDS)
    return ProductPage(
        contents=tuple(_product_from_wire(p) for p in _items(d["contents"])), last_id=_opt_int(d["lastId"])
    )


def _ranking_to_wire(entries: tuple[RankingEntry, ...]) -> list[dict[str, Any]]:
    return [
        {"rank": e.rank, "productId": e.product_id, "productName": e.product_name, "salesCount": e.sales_count}
        for e in entries
    ]


def _ranking_from_wire(data: Any) -> tuple[RankingEntry, ...]:
    out = []
    for raw in _items(data):
        d = _fields(raw, _RANKING_FIELDS)
        out.append(RankingEntry(
            rank=_int(d["rank"]), product_id=_int(d["productId"]), product_name=_str(d["productName"]),
            sales_count=_int(d["salesCount"]),
        ))  # fmt: skip
    return tuple(out)


PRODUCT = Codec[ProductData]("catalog.product", 1, _product_to_wire, _product_from_wire)
PRODUCT_PAGE = Codec[ProductPage]("catalog.product_page", 1, _page_to_wire, _page_from_wire)
POPULAR = Codec[tuple[PopularItem, ...]]("catalog.popular", 1, _popular_to_wire, _popular_from_wire)
RANKING = Codec[tuple[RankingEntry, ...]]("catalog.ranking", 1, _ranking_to_wire, _ranking_from_wire)


# --- keys (no schema version in them, see the module docstring) -----------------------------


def product_key(generation: int, product_id: int) -> str:
    return f"catalog:g{generation}:product:{product_id}"


def page_key(generation: int, *, category_id: int | None, last_id: int | None, size: int) -> str:
    return f"catalog:g{generation}:page:c{category_id or '-'}:a{'-' if last_id is None else last_id}:s{size}"


def popular_key(generation: int) -> str:
    return f"catalog:g{generation}:popular"


def ranking_key(generation: int, period: str, day: date) -> str:
    return f"catalog:g{generation}:ranking:{period}:{day.isoformat()}"


# --- the catalog generation ------------------------------------------------------------------


def _fresh_generation() -> int:
    """A starting value that no lost counter can have used: entries of an older counter may outlive it."""
    return time.time_ns() // 1_000


def catalog_generation() -> int | None:
    """The current generation, or None when Redis is unavailable (then callers skip the cache)."""
    cache = caches["default"]
    try:
        generation = cache.get(GENERATION_KEY)
        if not isinstance(generation, int):
            cache.add(GENERATION_KEY, _fresh_generation(), timeout=None)
            generation = cache.get(GENERATION_KEY)
    except RedisError:
        UNAVAILABLE.labels("get").inc()
        return None
    return generation if isinstance(generation, int) else None


def catalog_generation_bump() -> None:
    """Make every product-derived entry unreachable. Call after the change committed."""
    cache = caches["default"]
    try:
        try:
            cache.incr(GENERATION_KEY)
        except ValueError:  # no counter yet (or Redis lost it): any fresh value will do
            cache.set(GENERATION_KEY, _fresh_generation(), timeout=None)
    except RedisError:
        UNAVAILABLE.labels("incr").inc()
        log.warning("catalog generation not bumped (Redis unavailable); entries expire by TTL")


def sales_caches_invalidate(day: date) -> None:
    """After sales changed: the popular list and today's rankings of the current generation.

    The stale popular copy stays: it is what readers get while one of them rebuilds.
    """
    generation = catalog_generation()
    if generation is None:
        return
    cache_delete(
        popular_key(generation), *(ranking_key(generation, period, day) for period in ("daily", "weekly", "total"))
    )
