"""Typed, versioned cache codecs (incident 1 made impossible).

A cached value is never "whatever JSON comes back". Each cached shape has a `Codec` with a name,
a schema version and two functions: `to_wire(value) -> JSON-able` and `from_wire(data) -> value`.
On the wire: `{"s": <name>, "v": <version>, "d": <data>}` as UTF-8 JSON bytes.

Reading: an entry of another shape or version, or one that does not decode, is a *miss*
(logged and counted in `cache_decode_misses_total`), never an error; the caller rebuilds it
from the database and writes the current version back. Redis being down is also a miss
(counted in `cache_unavailable_total`), so reads fall back to the database.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.core.cache import caches
from django_redis.serializers.base import BaseSerializer
from prometheus_client import Counter
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


def _cache():
    return caches["typed"]


T = TypeVar("T")

CACHE_RESULTS = Counter("cache_requests_total", "Typed cache reads by codec and result", ["codec", "result"])
DECODE_MISSES = Counter("cache_decode_misses_total", "Entries treated as misses (version/shape)", ["codec"])
UNAVAILABLE = Counter("cache_unavailable_total", "Cache operations that failed because Redis is down", ["op"])


class BytesSerializer(BaseSerializer):
    """django-redis serializer that stores our codecs' bytes as they are (never pickle)."""

    def dumps(self, value: Any) -> bytes:
        if isinstance(value, bytes):
            return value
        return json.dumps(value, separators=(",", ":")).encode()

    def loads(self, value: bytes) -> Any:
        return value


@dataclass(frozen=True)
class Codec(Generic[T]):
    name: str
    version: int
    to_wire: Callable[[T], Any]
    from_wire: Callable[[Any], T]

    def encode(self, value: T) -> bytes:
        envelope = {"s": self.name, "v": self.version, "d": self.to_wire(value)}
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()

    def decode(self, raw: Any) -> T | None:
        """The value, or None when the entry is not of this shape and version."""
        try:
            envelope = json.loads(raw)
            if envelope.get("s") != self.name or envelope.get("v") != self.version:
                raise ValueError(f"entry is {envelope.get('s')} v{envelope.get('v')}")
            return self.from_wire(envelope["d"])
        except Exception as exc:  # noqa: BLE001 - any undecodable entry is a miss, by design
            DECODE_MISSES.labels(self.name).inc()
            log.info("cache entry for %s treated as a miss: %s", self.name, exc)
            return None


def cache_read(codec: Codec[T], key: str) -> T | None:
    try:
        raw = _cache().get(key)
    except RedisError:
        UNAVAILABLE.labels("get").inc()
        return None
    if raw is None:
        CACHE_RESULTS.labels(codec.name, "miss").inc()
        return None
    value = codec.decode(raw)
    CACHE_RESULTS.labels(codec.name, "hit" if value is not None else "stale").inc()
    return value


def cache_write(codec: Codec[T], key: str, value: T, timeout: int) -> None:
    try:
        _cache().set(key, codec.encode(value), timeout)
    except RedisError:
        UNAVAILABLE.labels("set").inc()


def cache_delete(*keys: str) -> None:
    try:
        _cache().delete_many(list(keys))
    except RedisError:
        UNAVAILABLE.labels("delete").inc()
