"""/metrics and /readyz's details: the loopback, or the metrics token; nobody else."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

TOKEN = "t" * 40


def test_metrics_from_the_loopback():
    for address in ("127.0.0.1", "::1"):
        response = Client(REMOTE_ADDR=address).get("/metrics")
        assert response.status_code == 200
        assert b"django_http_responses_total_by_status_view_method_total" in response.content


def test_metrics_from_elsewhere_need_the_token(settings):
    settings.METRICS_TOKEN = TOKEN
    outside = Client(REMOTE_ADDR="203.0.113.7")
    refused = outside.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1")  # a forwarded header is not trusted
    assert refused.status_code == 403 and b"django_http" not in refused.content
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert outside.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_no_token_configured_means_loopback_only(settings):
    settings.METRICS_TOKEN = ""
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_loopback_can_be_refused_too(settings):
    settings.METRICS_ALLOW_LOOPBACK = False
    settings.METRICS_TOKEN = TOKEN
    assert Client().get("/metrics").status_code == 403
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_readyz_details_only_for_operators(settings):
    settings.METRICS_TOKEN = TOKEN
    public = Client(REMOTE_ADDR="203.0.113.7").get("/readyz")
    assert public.status_code == 200 and public.json() == {"success": True, "data": {"status": "ready"}}
    detailed = Client(REMOTE_ADDR="203.0.113.7").get("/readyz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert set(detailed.json()["data"]["checks"]) == {"database", "redis", "kafka"}
    assert "checks" in Client().get("/readyz").json()["data"]  # loopback


def test_readyz_says_only_not_ready_to_the_public(settings):
    from common.health import CHECKS

    def broken() -> None:
        raise RuntimeError("secret-host:6379 refused")

    CHECKS["test-broken"] = broken
    try:
        public = Client(REMOTE_ADDR="203.0.113.7").get("/readyz")
        operator = Client().get("/readyz")
    finally:
        del CHECKS["test-broken"]
    assert public.status_code == 503 and public["Retry-After"] == "2"
    assert b"secret-host" not in public.content and public.json()["errorCode"] == "NOT_READY"
    assert operator.status_code == 503 and operator.json()["data"]["down"] == ["test-broken"]
