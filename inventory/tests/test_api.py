"""The public stock view, and the stock/reservation admin pages."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inventory.models import Reservation, Stock
from shop.models import SalesDaily
from shop.tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def url(product_id) -> str:
    return f"/api/v1/inventory/products/{product_id}"


def test_stock_view_is_public_and_exact(api, django_assert_num_queries):
    product = ProductFactory()
    Stock.objects.create(product=product, quantity=10, reserved_quantity=3)
    with django_assert_num_queries(1):
        response = api.get(url(product.pk))
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "data": {"productId": product.pk, "quantity": 10, "reservedQuantity": 3, "availableQuantity": 7},
    }


def test_stock_is_never_cached(api):
    product = ProductFactory()
    Stock.objects.create(product=product, quantity=10)
    assert api.get(url(product.pk)).json()["data"]["availableQuantity"] == 10
    Stock.objects.filter(pk=product.pk).update(reserved_quantity=10)
    assert api.get(url(product.pk)).json()["data"]["availableQuantity"] == 0


def test_product_without_a_stock_row_has_nothing_on_hand(api):
    product = ProductFactory()
    assert api.get(url(product.pk)).json()["data"] == {
        "productId": product.pk, "quantity": 0, "reservedQuantity": 0, "availableQuantity": 0,
    }  # fmt: skip


@pytest.mark.parametrize("product_id", [0, 987654, 99999999999999999999999])
def test_unknown_product_is_404(api, product_id):
    response = api.get(url(product_id))
    assert response.status_code == 404
    assert response.json()["errorCode"] == "PRODUCT_NOT_FOUND"


@pytest.mark.parametrize("path", ["abc", "-1", "1.0"])
def test_malformed_id_is_404_route(api, path):
    response = api.get(url(path))
    assert response.status_code == 404 and response.json()["errorCode"] == "NOT_FOUND"


# --- admin ---------------------------------------------------------------------------------


@pytest.fixture
def stock():
    product = ProductFactory(name="Blue kettle")
    Stock.objects.create(product=product, quantity=5, reserved_quantity=2)
    SalesDaily.objects.create(product=product, day=timezone.localdate(), quantity=4)
    Reservation.objects.create(
        order_id=77, product=product, quantity=2, expires_at=timezone.now() + timedelta(minutes=10)
    )
    return Stock.objects.get(pk=product.pk)


@pytest.mark.parametrize(
    "path",
    [
        "/admin/inventory/stock/",
        "/admin/inventory/stock/?q=kettle",
        "/admin/inventory/stock/?availability=low",
        "/admin/inventory/stock/?availability=sold_out&product__is_flash_sale__exact=1",
        "/admin/inventory/reservation/?status__exact=ACTIVE&q=77",
        "/admin/shop/product/?q=kettle&status__exact=ACTIVE",
        "/admin/shop/category/",
        "/admin/shop/salesdaily/",
        "/admin/shop/salesdaily/?q=kettle",
    ],
)
def test_stock_admin_list_search_and_filters_render(operator, stock, path):
    assert operator.get(path).status_code == 200


def test_admin_lists_find_what_they_should(operator, stock):
    assert b"Blue kettle" in operator.get("/admin/inventory/stock/?availability=low").content
    assert b"Blue kettle" not in operator.get("/admin/inventory/stock/?availability=sold_out").content


def test_admin_restock_adds_units_without_touching_reservations(operator, stock):
    Stock.objects.filter(pk=stock.pk).update(reserved_quantity=4)  # a checkout reserved more meanwhile
    response = operator.post(f"/admin/inventory/stock/{stock.pk}/change/", {"add_units": 10})
    assert response.status_code == 302
    stock.refresh_from_db()
    assert (stock.quantity, stock.reserved_quantity, stock.version) == (15, 4, 1)


def test_admin_cannot_add_or_delete_stock_or_change_reservations(operator, stock):
    reservation = Reservation.objects.get()
    assert operator.get("/admin/inventory/stock/add/").status_code == 403
    assert operator.post(f"/admin/inventory/stock/{stock.pk}/delete/", {"post": "yes"}).status_code == 403
    assert operator.post(f"/admin/inventory/reservation/{reservation.pk}/change/", {}).status_code == 403
    assert Stock.objects.count() == 1 and Reservation.objects.get().status == "ACTIVE"
