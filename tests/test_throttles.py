"""Rate limits: token issuing, coupon issue and queue enqueue answer 429 with Retry-After once one
caller passes its rate; other callers are not affected; the limit holds under real concurrency
(exactly `limit` requests pass); anonymous callers are keyed by an address a client cannot choose.

The requests before the limit carry an invalid body (400): the throttle runs before validation, so
they count without touching Kafka or issuing anything.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.test import override_settings
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from common import throttling
from common.throttling import parse_rate
from conftest import client_for
from shop.models import UserCoupon
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TINY = 3
TOKEN = "/api/v1/auth/token"


def rates(**overrides: str):
    return override_settings(
        REST_FRAMEWORK={
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **overrides},
        }
    )


@pytest.fixture
def tiny_rates():
    with rates(**{scope: f"{TINY}/min" for scope in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]}):
        yield


def assert_limited(response, window: int = 60) -> None:
    assert response.status_code == 429, response.content[:200]
    body = response.json()
    assert body["success"] is False and body["errorCode"] == "RATE_LIMITED"
    assert 1 <= int(response["Retry-After"]) <= window


def test_token_issuing_is_rate_limited(api, tiny_rates):
    user = UserFactory()
    for _ in range(TINY):
        assert api.post(TOKEN, {"username": user.username, "password": "wrong"}, format="json").status_code == 401
    assert_limited(api.post(TOKEN, {"username": user.username, "password": "correct-horse-battery"}, format="json"))
    assert_limited(api.post(f"{TOKEN}/refresh", {"refresh": "x"}, format="json"))  # the same scope


def test_coupon_issue_is_rate_limited_per_user(tiny_rates):
    hammering, other = client_for(UserFactory()), client_for(UserFactory())
    for _ in range(TINY):
        assert hammering.post("/api/v1/coupons/issue", {"couponId": "x"}, format="json").status_code == 400
    assert_limited(hammering.post("/api/v1/coupons/issue", {"couponId": 1}, format="json"))
    assert UserCoupon.objects.count() == 0
    # Another user has a budget of their own.
    assert other.post("/api/v1/coupons/issue", {"couponId": 999999}, format="json").status_code == 404


def test_queue_enqueue_is_rate_limited_per_user(tiny_rates):
    hammering, other = client_for(UserFactory()), client_for(UserFactory())
    for _ in range(TINY):
        assert hammering.post("/api/v1/checkout/queue", {"productId": 0}, format="json").status_code == 400
    assert_limited(hammering.post("/api/v1/checkout/queue", {"productId": 1}, format="json"))
    assert other.post("/api/v1/checkout/queue", {"productId": 0}, format="json").status_code == 400


def test_retry_after_is_the_rest_of_the_window_and_the_limit_lifts_after_it(api):
    user = client_for(UserFactory())
    with rates(coupon_issue=f"{TINY}/min"):
        for _ in range(TINY):
            user.post("/api/v1/coupons/issue", {"couponId": "x"}, format="json")
        refused = user.post("/api/v1/coupons/issue", {"couponId": "x"}, format="json")
        assert_limited(refused)
        key = caches["default"].make_key(f"throttle_coupon_issue_{user.user.pk}")
        left_ms = get_redis_connection("default").pttl(key)
        assert 0 < left_ms <= 60_000
        assert math.ceil(left_ms / 1000) <= int(refused["Retry-After"]) <= 60
    with rates(coupon_issue=f"{TINY}/sec"):  # a one-second window: wait what Retry-After says, then pass
        caches["default"].delete_pattern("throttle_*")
        for _ in range(TINY):
            user.post("/api/v1/coupons/issue", {"couponId": "x"}, format="json")
        refused = user.post("/api/v1/coupons/issue", {"couponId": "x"}, format="json")
        assert_limited(refused, window=1)
        time.sleep(int(refused["Retry-After"]))
        assert user.post("/api/v1/coupons/issue", {"couponId": "x"}, format="json").status_code == 400


def test_only_views_with_a_scope_call_the_limiter(auth_api, monkeypatch):
    calls: list[str] = []
    real = throttling._LIMITER

    def counting(*args, **kwargs):
        calls.append(kwargs["keys"][0])
        return real(*args, **kwargs)

    monkeypatch.setattr(throttling, "_LIMITER", counting)
    assert auth_api.get("/api/v1/cart").status_code == 200
    assert auth_api.post("/api/v1/cart/items", {"productId": "x"}, format="json").status_code == 400
    assert calls == []
    assert auth_api.post("/api/v1/coupons/issue", {"couponId": "x"}, format="json").status_code == 400
    assert len(calls) == 1 and calls[0].endswith(f"throttle_coupon_issue_{auth_api.user.pk}")


def test_default_rates_leave_room_for_the_load_scenarios():
    """k6 scenarios use one user per VU and a few coupon/queue calls each; tokens come from
    `manage.py issue_tokens`, not from /auth/token. A limit is per user (per address for /auth)."""
    for scope, at_least in {"coupon_issue": 60, "queue_enqueue": 60, "auth": 300}.items():
        num_requests, duration = parse_rate(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope])
        assert num_requests * 60 / duration >= at_least, scope


def test_a_burst_of_one_user_within_the_default_rate_is_not_limited():
    client = client_for(UserFactory())
    for _ in range(30):
        assert client.post("/api/v1/coupons/issue", {"couponId": "x"}, format="json").status_code == 400


# --- under concurrency ---------------------------------------------------------------------------


def hammer(send: Callable[[], object], *, threads: int, each: int) -> Counter[int]:
    """`threads` real threads, released together, each sending `each` requests; the statuses counted."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker() -> None:
        try:
            start.wait()
            for _ in range(each):
                status = send().status_code  # type: ignore[attr-defined]
                with lock:
                    statuses[status] += 1
        finally:
            connection.close()

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return statuses


def limit_of(scope: str) -> int:
    return parse_rate(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope])[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "scope, path, body",
    [("coupon_issue", "/api/v1/coupons/issue", {"couponId": "x"}), ("queue_enqueue", "/api/v1/checkout/queue", {})],
)
def test_one_users_concurrent_burst_passes_exactly_the_limit(scope, path, body):
    """50 threads x 4 requests of one user against the default 120/min: exactly 120 pass (DRF's
    read-modify-write history let every one of 130 concurrent requests through)."""
    user = UserFactory()
    limit = limit_of(scope)
    assert limit == 120
    statuses = hammer(lambda: client_for(user).post(path, body, format="json"), threads=50, each=4)
    assert sum(statuses.values()) == 200
    assert statuses[429] == 200 - limit, statuses
    assert statuses[400] == limit, statuses


@pytest.mark.django_db(transaction=True)
def test_one_addresss_concurrent_token_requests_pass_exactly_the_limit():
    """650 token requests from one address against 600/min: exactly 600 pass."""
    limit = limit_of("auth")
    assert limit == 600
    statuses = hammer(lambda: APIClient().post(TOKEN, {}, format="json"), threads=50, each=13)
    assert statuses[429] == 650 - limit and statuses[400] == limit, statuses


# --- which address an anonymous caller has ---------------------------------------------------------


def test_a_new_x_forwarded_for_per_request_does_not_reset_the_anonymous_limit(api, tiny_rates):
    """Without trusted proxies (NUM_PROXIES=0, the default) the header is ignored: REMOTE_ADDR counts."""
    for i in range(TINY):
        response = api.post(TOKEN, {}, format="json", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
        assert response.status_code == 400
    assert_limited(api.post(TOKEN, {}, format="json", HTTP_X_FORWARDED_FOR="198.51.100.99"))
    assert_limited(api.post(TOKEN, {}, format="json"))
    # Another real address has its own budget.
    assert api.post(TOKEN, {}, format="json", REMOTE_ADDR="192.0.2.1").status_code == 400


def test_behind_one_proxy_the_last_hop_is_the_client(api, tiny_rates):
    """NUM_PROXIES=1 (nginx appends the address it saw): the last X-Forwarded-For entry is the client,
    whatever the client wrote before it; the proxy's own address (REMOTE_ADDR) is not."""
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}):
        proxy = {"REMOTE_ADDR": "10.0.0.2"}
        for i in range(TINY):
            xff = f"198.51.100.{i}, 203.0.113.7"  # a forged first entry, then what nginx appended
            assert api.post(TOKEN, {}, format="json", HTTP_X_FORWARDED_FOR=xff, **proxy).status_code == 400
        assert_limited(api.post(TOKEN, {}, format="json", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7", **proxy))
        assert_limited(api.post(TOKEN, {}, format="json", HTTP_X_FORWARDED_FOR="203.0.113.7", **proxy))
        # Other clients behind the same proxy are not affected.
        other = "203.0.113.7, 203.0.113.8"
        assert api.post(TOKEN, {}, format="json", HTTP_X_FORWARDED_FOR=other, **proxy).status_code == 400
        assert api.post(TOKEN, {}, format="json", **proxy).status_code == 400  # no header: REMOTE_ADDR


def test_with_redis_down_a_throttled_endpoint_answers_503_and_issues_nothing(throwaway_redis):
    """A limit that cannot be counted is not lifted: 503 CACHE_UNAVAILABLE with Retry-After."""
    client = client_for(UserFactory())
    assert client.post("/api/v1/coupons/issue", {"couponId": "x"}, format="json").status_code == 400
    throwaway_redis.stop(10)
    refused = client.post("/api/v1/coupons/issue", {"couponId": 1}, format="json")
    token = APIClient().post(TOKEN, {}, format="json")
    for response in (refused, token):
        assert response.status_code == 503, response.content[:200]
        assert response.json()["errorCode"] == "CACHE_UNAVAILABLE" and response["Retry-After"]
    assert UserCoupon.objects.count() == 0
