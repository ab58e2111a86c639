"""Operator controls in the admin: queue depth, pause/resume, the sold-out flag; the request list."""

from __future__ import annotations

import pytest
from django.test import Client

from orders.models import FlashSaleControl, QueueRequest
from orders.queue.admission import queue_request_enqueue
from orders.tests.helpers import make_product
from orders.tests.queue_support import bulk_users, flash_product, topic_messages

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("queue_topic")]

CHANGELIST = "/admin/orders/flashsaleproduct/"


def act(operator: Client, action: str, *products) -> None:
    response = operator.post(CHANGELIST, {"action": action, "_selected_action": [p.pk for p in products]})
    assert response.status_code == 302, response.content[:500]


def test_the_changelist_shows_flash_products_with_depth_and_switches(operator, django_assert_max_num_queries):
    product, _normal = flash_product(stock=7), make_product(stock=3)
    for user in bulk_users(3):
        queue_request_enqueue(user_id=user.pk, product_id=product.pk)

    with django_assert_max_num_queries(12):
        page = operator.get(CHANGELIST)

    assert page.status_code == 200
    rows = page.context["cl"].result_list
    assert [p.pk for p in rows] == [product.pk]  # only flash-sale products
    assert (rows[0].available_qty, rows[0].queued, rows[0].is_paused) == (7, 3, False)
    assert operator.get("/admin/orders/queuerequest/?status__exact=QUEUED").context["cl"].result_count == 3
    assert Client().get(CHANGELIST).status_code == 302  # staff only


def test_pause_resume_and_the_sold_out_flag(operator, auth_api):
    product = flash_product(stock=5)

    act(operator, "pause", product)
    assert FlashSaleControl.objects.get(product=product).paused is True

    act(operator, "resume", product)
    assert FlashSaleControl.objects.get(product=product).paused is False
    wake = topic_messages(expected=1)
    assert [m.value() for m in wake] == [f'{{"type": "wake", "productId": {product.pk}}}'.encode()]

    act(operator, "mark_sold_out", product)
    refused = auth_api.post("/api/v1/checkout/queue", {"productId": product.pk}, format="json")
    assert (refused.status_code, refused.json()["errorCode"]) == (409, "SOLD_OUT")
    page = operator.get(CHANGELIST)
    assert page.context["cl"].result_list[0].pk == product.pk
    assert b"operator" in page.content

    act(operator, "clear_sold_out", product)
    assert auth_api.post("/api/v1/checkout/queue", {"productId": product.pk}, format="json").status_code == 202
    assert QueueRequest.objects.filter(product=product, status="QUEUED").count() == 1
