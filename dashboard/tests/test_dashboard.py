"""The dashboard page, its one data endpoint and its operator controls (real MariaDB and Redis)."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from common.audit import audit_invariants
from orders.models import FlashSaleControl, QueueRequest
from orders.queue.controls import queue_flags
from orders.services import LineRequest, checkout_initiate
from orders.tests.helpers import fund, make_product
from payments.services import payment_process
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sale():
    """A flash product with 10 units: 1 sold (paid), 2 reserved (unpaid), 3 requests queued."""
    product = make_product(stock=10, price=1_000, is_flash_sale=True)
    buyer = UserFactory()
    fund(buyer, 1_000_000)
    paid = checkout_initiate(user_id=buyer.pk, direct_items=[LineRequest(product.pk, 1)])
    payment_process(user_id=buyer.pk, order_id=paid.pk, amount=paid.final_amount)
    holder = UserFactory()  # another shopper: a flash product is limited per customer (FLASH_SALE_MAX_PER_USER)
    fund(holder, 1_000_000)
    checkout_initiate(user_id=holder.pk, direct_items=[LineRequest(product.pk, 2)])
    for position in range(1, 4):
        QueueRequest.objects.create(
            request_id=uuid.uuid4(), user=UserFactory(), product=product, quantity=1, queue_position=position
        )
    return product


def test_staff_only(client):
    for url in (reverse("sale-dashboard"), reverse("sale-dashboard-data")):
        assert client.get(url).status_code == 302  # anonymous: to the admin login
        shopper = Client()
        shopper.force_login(UserFactory())
        response = shopper.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_admin_index_links_the_dashboard(operator):
    page = operator.get("/admin/").content.decode()
    assert reverse("sale-dashboard") in page and "Live flash-sale dashboard" in page


def test_the_page_renders_with_its_chart_library_from_our_static_files(operator):
    page = operator.get(reverse("sale-dashboard"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/vendor/uplot/uPlot.iife.min.js" in html and "/static/dashboard/dashboard.js" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from outside
    # served by WhiteNoise from the npm package's dist folder, also with DEBUG off (gunicorn)
    library = operator.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert library.status_code == 200 and b"uPlot" in b"".join(library.streaming_content)


def test_one_request_returns_every_figure(operator, sale):
    audit_invariants()
    data = operator.get(reverse("sale-dashboard-data")).json()
    (row,) = [p for p in data["products"] if p["id"] == sale.pk]
    assert (row["remaining"], row["reserved"], row["sold"]) == (7, 2, 1)
    assert row["queueDepth"] == 3 and row["oldestQueuedSeconds"] >= 0
    assert row["paused"] is False and row["soldOutFlag"] is None
    assert data["audit"]["ok"] is True and data["audit"]["ageSeconds"] < 60
    assert set(data["audit"]["checks"]) >= {"stock_nonnegative", "wallet_matches_ledger"}
    assert set(data["pipeline"]) == {"relayPendingSeconds", "outboxUnappliedSeconds", "deadLetters"}
    assert data["rates"]["lastMinute"]["seconds"] == 60
    assert data["canChange"] is True


def test_pause_resume_and_sold_out_flag_through_the_guarded_services(operator, sale, queue_topic):
    url = reverse("sale-dashboard-control")
    for action, check in (
        ("pause", lambda: FlashSaleControl.objects.get(product=sale).paused),
        ("resume", lambda: not FlashSaleControl.objects.get(product=sale).paused),
        ("close", lambda: queue_flags(sale.pk).closed_flag),
        ("reopen", lambda: not queue_flags(sale.pk).closed_flag),
    ):
        response = operator.post(url, {"productId": sale.pk, "action": action})
        assert response.status_code == 200 and response.json()["ok"], response.content
        assert check(), action
    assert operator.post(url, {"productId": sale.pk, "action": "explode"}).status_code == 400
    plain = make_product(stock=1)
    assert operator.post(url, {"productId": plain.pk, "action": "pause"}).status_code == 404


def test_controls_need_the_change_permission_and_a_csrf_token(sale):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_flashsaleproduct"))
    client = Client()
    client.force_login(viewer)
    assert client.get(reverse("sale-dashboard-data")).json()["canChange"] is False
    refused = client.post(reverse("sale-dashboard-control"), {"productId": sale.pk, "action": "pause"})
    assert refused.status_code == 403 and not FlashSaleControl.objects.filter(product=sale, paused=True).exists()

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert strict.post(reverse("sale-dashboard-control"), {"productId": sale.pk, "action": "pause"}).status_code == 403
    assert not FlashSaleControl.objects.filter(product=sale, paused=True).exists()
