"""What the catalog caches, and how: typed shapes, their versioned codecs, keys and lifetimes.

Typed (incident 1). Every cached shape is a frozen dataclass with an explicit `Codec`
(common.codecs): a hit decodes into exactly the dataclass a miss builds. On the wire a shape is a
compact positional row (`_Rows`) checked cell by cell, so an entry of another shape, another
version or with a wrong cell is a miss (logged and counted), never an error. Keys carry no schema
version on purpose: after a deploy the new code *reads* the old entry, rejects it and overwrites
it. Views render a hit and a miss with the same payload function (`*_payload`).

Invalidation. Every entry is filed under the catalog *generation*, a counter in the "typed" cache
bumped after any product or category change commits (`catalog_generation_bump`). A reader reads
the generation before it queries the database, so an entry built from rows older than a change
can only land under the old generation, which nobody reads any more. Sales do not change products;
they delete the popular list and today's rankings of the current generation
(`sales_caches_invalidate`).

Near cache. Each process also keeps what it decoded for `CATALOG_NEAR_CACHE_SECONDS` (default 1 s,
0 turns it off; off under tests unless a test turns it on), so the hottest reads cost neither a
database query nor a Redis round trip. A change made by another process shows within that time;
this process's own changes clear it at once.

Redis down: the generation is unknown and readers go to the database: slower, never an error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import date
from operator import attrgetter
from typing import Any, Generic, TypeVar, get_type_hints

from django.conf import settings
from django.core.cache import caches
from django.utils import timezone
from redis.exceptions import RedisError

from common.codecs import CACHE_RESULTS, UNAVAILABLE, Codec, cache_delete, cache_write

log = logging.getLogger(__name__)
T = TypeVar("T")

# Redis lifetimes (seconds). Changes invalidate explicitly; the TTLs only bound what a lost
# invalidation (Redis briefly down at the moment of a change) can leave behind.
DETAIL_TTL = 300
PAGE_TTL = 30
POPULAR_TTL = 90  # the beat task re-warms it every 60 s, so readers normally never miss
POPULAR_STALE_TTL = 3600  # the "previous value" served while one process rebuilds
RANKING_TTL = 10

GENERATION_KEY = "catalog:generation"
POPULAR = "popular"
POPULAR_STALE_KEY = "catalog:popular:stale"


# --- shapes (frozen: the near cache shares them between threads) -------------------------------


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


# --- payloads: the API's JSON for each shape ----------------------------------------------------


def product_payload(p: ProductData) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "description": p.description, "price": p.price, "categoryId": p.category_id}


def popular_payload(items: Sequence[PopularItem]) -> list[dict[str, Any]]:
    return [
        {
            "id": i.id, "name": i.name, "description": i.description, "price": i.price, "categoryId": i.category_id,
            "salesCount": i.sales_count,
        }
        for i in items
    ]  # fmt: skip


def page_payload(page: ProductPage) -> dict[str, Any]:
    return {"contents": [product_payload(p) for p in page.contents], "lastId": page.last_id}


def ranking_payload(entries: Sequence[RankingEntry]) -> list[dict[str, Any]]:
    return [
        {"rank": e.rank, "productId": e.product_id, "productName": e.product_name, "salesCount": e.sales_count}
        for e in entries
    ]


# --- wire form: positional rows, checked strictly -------------------------------------------------


class _Rows(Generic[T]):
    """A dataclass as a JSON array of its fields in declaration order.

    The order and the types are part of the codec's schema version: change a shape, bump its
    version. Decoding checks the length and the exact type of every cell (bool is not int), so a
    row of another layout raises, and the codec turns that into a miss. Positional rows decode
    2-3 times faster than JSON objects, which matters for a 50-item list.
    """

    def __init__(self, cls: type[T]):
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        hints = get_type_hints(cls)
        self.cls = cls
        self.types = tuple(hints[name] for name in names)
        self.values = attrgetter(*names)

    def dump(self, obj: T) -> list[Any]:
        return list(self.values(obj))

    def load(self, row: Any) -> T:
        if type(row) is not list or tuple(map(type, row)) != self.types:
            raise ValueError(f"not a {self.cls.__name__} row: {row!r:.200}")
        return self.cls(*row)

    def dump_many(self, objs: Sequence[T]) -> list[list[Any]]:
        return [list(self.values(obj)) for obj in objs]

    def load_many(self, rows: Any) -> tuple[T, ...]:
        if type(rows) is not list:
            raise ValueError(f"not a list of {self.cls.__name__} rows")
        return tuple(self.load(row) for row in rows)


_PRODUCT_ROWS = _Rows(ProductData)
_POPULAR_ROWS = _Rows(PopularItem)
_RANKING_ROWS = _Rows(RankingEntry)


def _page_to_wire(page: ProductPage) -> list[Any]:
    return [_PRODUCT_ROWS.dump_many(page.contents), page.last_id]


def _page_from_wire(data: Any) -> ProductPage:
    if type(data) is not list or len(data) != 2 or not (data[1] is None or type(data[1]) is int):
        raise ValueError("not a product page")
    return ProductPage(_PRODUCT_ROWS.load_many(data[0]), data[1])


PRODUCT_CODEC = Codec[ProductData]("catalog.product", 1, _PRODUCT_ROWS.dump, _PRODUCT_ROWS.load)
PAGE_CODEC = Codec[ProductPage]("catalog.product_page", 1, _page_to_wire, _page_from_wire)
POPULAR_CODEC = Codec[tuple[PopularItem, ...]]("catalog.popular", 1, _POPULAR_ROWS.dump_many, _POPULAR_ROWS.load_many)
RANKING_CODEC = Codec[tuple[RankingEntry, ...]]("catalog.ranking", 1, _RANKING_ROWS.dump_many, _RANKING_ROWS.load_many)


# --- names and keys (no schema version in them, see the module docstring) ----------------------


def product_name(product_id: int) -> str:
    return f"product:{product_id}"


def page_name(*, category_id: int | None, last_id: int | None, size: int) -> str:
    return f"page:c{category_id or '-'}:a{'-' if last_id is None else last_id}:s{size}"


def ranking_name(period: str, day: date) -> str:
    return f"ranking:{period}:{day.isoformat()}"


def entry_key(generation: int, name: str) -> str:
    return f"catalog:g{generation}:{name}"


# --- the near cache ----------------------------------------------------------------------------


class NearCache:
    """What this process decoded lately, for `CATALOG_NEAR_CACHE_SECONDS` (see the module docstring)."""

    MAX_ENTRIES = 4096  # names come from query strings: bound the memory, forget everything when full

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def seconds() -> float:
        return getattr(settings, "CATALOG_NEAR_CACHE_SECONDS", 0.0 if settings.TESTING else 1.0)

    def get(self, name: str) -> Any | None:
        entry = self._entries.get(name)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, name: str, value: Any) -> None:
        seconds = self.seconds()
        if seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[name] = (time.monotonic() + seconds, value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


near_cache = NearCache()


# --- the catalog generation and reads under it ---------------------------------------------------

# This process's last sight of the generation: only a guess that lets a Redis hit cost one round
# trip (MGET of the counter and the entry filed under the guess); it is checked on every read.
_seen_generation: int | None = None


def _typed():
    return caches["typed"]


def _fresh_generation() -> int:
    """A starting value that no lost counter can have used: entries of an older counter may outlive it."""
    return time.time_ns() // 1_000


def _generation(found: Any) -> int:
    global _seen_generation
    if type(found) is not int:  # never set, or lost with Redis: start a new series
        _typed().add(GENERATION_KEY, _fresh_generation(), timeout=None)
        found = _typed().get(GENERATION_KEY)
        if type(found) is not int:
            raise RedisError(f"catalog generation is unreadable: {found!r}")
    _seen_generation = found
    return found


def catalog_generation() -> int | None:
    """The current generation, or None when Redis is unavailable (then callers skip the cache)."""
    try:
        return _generation(_typed().get(GENERATION_KEY))
    except RedisError:
        UNAVAILABLE.labels("get").inc()
        return None


def catalog_generation_bump() -> None:
    """Make every entry built so far unreachable. Call after the change committed."""
    near_cache.clear()
    try:
        try:
            _typed().incr(GENERATION_KEY)
        except ValueError:  # no counter yet (or Redis lost it): any fresh value will do
            _typed().set(GENERATION_KEY, _fresh_generation(), timeout=None)
    except RedisError:
        UNAVAILABLE.labels("incr").inc()
        log.warning("catalog generation not bumped (Redis unavailable); entries expire by TTL")


def read_current(codec: Codec[T], name: str) -> tuple[int | None, T | None]:
    """(current generation, the entry filed under it or None). Generation None: Redis is down.

    One round trip when the generation is the one this process saw last: MGET reads the counter
    and the entry atomically, so an entry filed under an equal counter is current.
    """
    guess = _seen_generation
    try:
        if guess is not None:
            key = entry_key(guess, name)
            found = _typed().get_many([GENERATION_KEY, key])
            if found.get(GENERATION_KEY) == guess:
                return guess, _decode(codec, found.get(key))
            generation = _generation(found.get(GENERATION_KEY))
        else:
            generation = catalog_generation()
            if generation is None:
                return None, None
        return generation, _decode(codec, _typed().get(entry_key(generation, name)))
    except RedisError:
        UNAVAILABLE.labels("get").inc()
        return None, None


def _decode(codec: Codec[T], raw: Any) -> T | None:
    if raw is None:
        CACHE_RESULTS.labels(codec.name, "miss").inc()
        return None
    value = codec.decode(raw)
    CACHE_RESULTS.labels(codec.name, "hit" if value is not None else "stale").inc()
    return value


def store(codec: Codec[T], generation: int | None, name: str, value: T, timeout: int) -> None:
    """File a freshly built value under `generation` (the one read *before* building it)."""
    if generation is not None:
        cache_write(codec, entry_key(generation, name), value, timeout)
    near_cache.put(name, value)


def catalog_cached(codec: Codec[T], name: str, build: Callable[[], T], timeout: int) -> T:
    """Read-through: near cache, then Redis under the current generation, then `build()`.

    A hit decodes into exactly what `build()` returns on a miss; Redis down means `build()`.
    """
    value = near_cache.get(name)
    if value is not None:
        return value
    generation, value = read_current(codec, name)
    if value is not None:
        near_cache.put(name, value)
        return value
    value = build()
    store(codec, generation, name, value, timeout)
    return value


def sales_caches_invalidate() -> None:
    """After sales changed (for any day): the popular list and today's rankings.

    The stale popular copy stays: it is what readers get while one of them rebuilds.
    """
    near_cache.clear()
    generation = catalog_generation()
    if generation is None:
        return
    today = timezone.localdate()
    names = [POPULAR, *(ranking_name(period, today) for period in ("daily", "weekly", "total"))]
    cache_delete(*(entry_key(generation, name) for name in names))
