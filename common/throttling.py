"""Rate limits that hold under concurrency: one atomic Redis counter per scope and caller.

Why not DRF's SimpleRateThrottle: it reads a history list from the cache, appends and writes it
back, so concurrent requests read the same list and all pass. Here each request is one EVALSHA of
a tiny Lua script (one round trip, atomic in Redis): INCR the caller's counter and give it its
expiry when it has none.

The window is fixed and starts at the caller's first request (the key's TTL): at most `limit`
requests pass until the key expires, then a new window starts. A fixed window was chosen over a
sliding log (a sorted-set entry per request: memory and work grow with the rate) and over a token
bucket (it refills during a burst, so a count cannot be stated exactly): one integer per caller,
an exact count, and `Retry-After` is the key's remaining TTL. The price is the usual one: a caller
can spend one window's budget at its end and the next at the start of the next window.

A view opts in with `throttle_scope = "<scope>"` (rates in REST_FRAMEWORK's
DEFAULT_THROTTLE_RATES); a view without a scope makes no Redis call. Redis down: the error
propagates and common.api answers 503 CACHE_UNAVAILABLE (a limit we cannot count is not lifted).

The caller is the authenticated user, or else the client address: REMOTE_ADDR, or, behind
NUM_PROXIES trusted proxies, the address the outermost of them saw (`client_ip`).
"""

from __future__ import annotations

import math
from functools import lru_cache

from django.core.cache import caches
from django_redis import get_redis_connection
from redis.commands.core import Script
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

# KEYS[1] the counter, ARGV[1] the window in ms -> {count after this request, ms until the window ends}.
# A key left without a TTL (it cannot happen through this script, but a counter must never live
# forever) gets one on its next use.
_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""

# Holds only the text and its SHA (EVALSHA; loaded on NOSCRIPT); the client is passed per call.
_LIMITER = Script(None, _SCRIPT.encode())
_DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@lru_cache(maxsize=64)
def parse_rate(rate: str) -> tuple[int, int]:
    """`"120/min"` -> (120, 60): DRF's format (the unit's first letter counts)."""
    count, period = rate.split("/")
    return int(count), _DURATIONS[period.strip()[0]]


def client_ip(request) -> str:
    """The client's address. X-Forwarded-For is trusted only as far as NUM_PROXIES proxies wrote
    it: with N proxies, the N-th address from the right is the one the outermost proxy saw."""
    remote_addr = request.META.get("REMOTE_ADDR") or ""
    num_proxies = api_settings.NUM_PROXIES or 0
    xff = request.META.get("HTTP_X_FORWARDED_FOR")
    if num_proxies <= 0 or not xff:
        return remote_addr
    addresses = [a.strip() for a in xff.split(",")]
    return addresses[-min(num_proxies, len(addresses))] or remote_addr


class ScopedRedisThrottle(BaseThrottle):
    scope_attr = "throttle_scope"

    def __init__(self) -> None:
        self._wait = 0.0

    def get_ident(self, request) -> str:
        return client_ip(request)

    def allow_request(self, request, view) -> bool:
        scope = getattr(view, self.scope_attr, None)
        if not scope:
            return True
        limit, window = parse_rate(api_settings.DEFAULT_THROTTLE_RATES[scope])
        user = request.user
        ident = user.pk if user is not None and user.is_authenticated else self.get_ident(request)
        key = caches["default"].make_key(f"throttle_{scope}_{ident}")
        count, ttl_ms = _LIMITER(keys=[key], args=[window * 1000], client=get_redis_connection("default"))
        if count <= limit:
            return True
        self._wait = ttl_ms / 1000
        return False

    def wait(self) -> float:
        return max(1, math.ceil(self._wait))
