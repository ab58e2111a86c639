"""Load shedding: a request that waited too long behind the proxy is answered 503 OVERLOADED at once."""

from __future__ import annotations

import time

import pytest

from inventory.models import Stock
from orders.tests.helpers import make_product

pytestmark = pytest.mark.django_db


def started(seconds_ago: float) -> str:
    return f"t={time.time() - seconds_ago:.3f}"  # what nginx sends: X-Request-Start "t=${msec}"


def test_a_request_queued_too_long_is_shed_before_any_work(auth_api, settings, django_assert_num_queries):
    settings.OVERLOAD_QUEUE_SECONDS = 3
    product = make_product(stock=10)
    with django_assert_num_queries(0):
        response = auth_api.post(
            "/api/v1/checkout/initiate",
            {"directOrderItems": [{"productId": product.pk, "quantity": 1}]},
            format="json",
            HTTP_X_REQUEST_START=started(4),
        )
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert response.json()["errorCode"] == "OVERLOADED"
    assert Stock.objects.get(pk=product.pk).reserved_quantity == 0


def test_a_request_within_the_limit_is_served(api, settings):
    settings.OVERLOAD_QUEUE_SECONDS = 3
    product = make_product()
    assert api.get(f"/api/v1/products/{product.pk}", HTTP_X_REQUEST_START=started(1)).status_code == 200


@pytest.mark.parametrize("header", ["", "t=garbage", "garbage"])
def test_without_a_readable_header_nothing_is_shed(api, settings, header):
    settings.OVERLOAD_QUEUE_SECONDS = 0.001
    product = make_product()
    assert api.get(f"/api/v1/products/{product.pk}", HTTP_X_REQUEST_START=header).status_code == 200


def test_health_is_never_shed_and_zero_turns_shedding_off(api, settings):
    settings.OVERLOAD_QUEUE_SECONDS = 3
    assert api.get("/healthz", HTTP_X_REQUEST_START=started(60)).status_code == 200
    settings.OVERLOAD_QUEUE_SECONDS = 0
    product = make_product()
    assert api.get(f"/api/v1/products/{product.pk}", HTTP_X_REQUEST_START=started(60)).status_code == 200
