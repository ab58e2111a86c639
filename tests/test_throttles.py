"""Rate limits: token issuing, coupon issue and queue enqueue answer 429 with Retry-After once one
caller passes its rate; other callers are not affected; the default rates leave room for load tests.

The requests before the limit carry an invalid body (400): the throttle runs before validation, so
they count without touching Kafka or issuing anything.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings
from rest_framework.throttling import ScopedRateThrottle

from conftest import client_for
from shop.models import UserCoupon
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TINY = 3


@pytest.fixture
def tiny_rates(monkeypatch):
    rates = {scope: f"{TINY}/min" for scope in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]}
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        # DRF copies the rates into a class attribute at import time; the override alone does not reach it.
        monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", rates)
        caches["default"].delete_pattern("throttle_*")
        yield rates


def assert_limited(response) -> None:
    assert response.status_code == 429, response.content[:200]
    body = response.json()
    assert body["success"] is False and body["errorCode"] == "RATE_LIMITED"
    assert 1 <= int(response["Retry-After"]) <= 61


def test_token_issuing_is_rate_limited(api, tiny_rates):
    user = UserFactory()
    for _ in range(TINY):
        assert (
            api.post("/api/v1/auth/token", {"username": user.username, "password": "wrong"}, format="json").status_code
            == 401
        )
    assert_limited(
        api.post("/api/v1/auth/token", {"username": user.username, "password": "correct-horse-battery"}, format="json")
    )
    assert_limited(api.post("/api/v1/auth/token/refresh", {"refresh": "x"}, format="json"))  # the same scope


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


def test_default_rates_leave_room_for_the_load_scenarios():
    """k6 scenarios use one user per VU and a few coupon/queue calls each; tokens come from
    `manage.py issue_tokens`, not from /auth/token. A limit is per user (per address for /auth)."""
    throttle = ScopedRateThrottle()
    for scope, at_least in {"coupon_issue": 60, "queue_enqueue": 60, "auth": 300}.items():
        num_requests, duration = throttle.parse_rate(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope])
        assert num_requests * 60 / duration >= at_least, scope


def test_a_burst_of_one_user_within_the_default_rate_is_not_limited():
    client = client_for(UserFactory())
    for _ in range(30):
        assert client.post("/api/v1/coupons/issue", {"couponId": "x"}, format="json").status_code == 400
