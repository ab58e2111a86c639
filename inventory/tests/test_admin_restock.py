"""Restock: the Stock admin's action (units added through `stock_add`, staff with change rights only)
and `manage.py restock` (through `stock_set_available`)."""

from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client

from common.audit import audit_invariants
from inventory.models import Stock
from orders.services import LineRequest, checkout_initiate
from orders.tests.helpers import fund, make_product
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/inventory/stock/"


def staff_client(*, superuser: bool = True, perms: tuple[str, ...] = ()) -> Client:
    staff = UserFactory(is_staff=True, is_superuser=superuser)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    client = Client()
    client.force_login(staff)
    return client


def post_action(client: Client, products, units) -> object:
    data = {"action": "restock", "_selected_action": [p.pk for p in products]}
    if units is not None:
        data["units"] = units
    return client.post(CHANGELIST, data, follow=True)


def test_restock_adds_units_and_keeps_reservations(user):
    fund(user, 1_000_000)
    a, b = make_product(stock=5), make_product(stock=0)
    checkout_initiate(user_id=user.pk, direct_items=[LineRequest(a.pk, 2)])  # reserved 2 of a
    response = post_action(staff_client(), [b, a], 50)
    assert response.status_code == 200
    assert "Added 50 units to 2 product(s)." in response.content.decode()
    rows = {s.product_id: (s.quantity, s.reserved_quantity) for s in Stock.objects.filter(pk__in=[a.pk, b.pk])}
    assert rows == {a.pk: (55, 2), b.pk: (50, 0)}
    assert audit_invariants().ok


@pytest.mark.parametrize("units", [None, "", "0", "-3", "abc", "10000001"])
def test_restock_without_a_valid_unit_count_changes_nothing(units):
    product = make_product(stock=5)
    response = post_action(staff_client(), [product], units)
    assert "Give the number of units" in response.content.decode()
    assert Stock.objects.get(pk=product.pk).quantity == 5


def test_restock_needs_the_change_permission():
    product = make_product(stock=5)
    viewer = staff_client(superuser=False, perms=("view_stock",))
    post_action(viewer, [product], 10)
    assert Stock.objects.get(pk=product.pk).quantity == 5
    changer = staff_client(superuser=False, perms=("view_stock", "change_stock"))
    post_action(changer, [product], 10)
    assert Stock.objects.get(pk=product.pk).quantity == 15


def test_restock_command_sets_the_available_units_and_keeps_reservations(user):
    fund(user, 1_000_000)
    a, b, outside = make_product(stock=5), make_product(stock=0), make_product(stock=7)
    checkout_initiate(user_id=user.pk, direct_items=[LineRequest(a.pk, 2)])  # reserved 2 of a
    out = StringIO()
    call_command("restock", products=f"{a.pk}-{b.pk}", available=100, stdout=out)
    assert out.getvalue().strip() == "2 stock rows now have 100 available units"
    rows = {s.product_id: (s.quantity, s.reserved_quantity, s.version) for s in Stock.objects.all()}
    assert rows == {a.pk: (102, 2, 2), b.pk: (100, 0, 1), outside.pk: (7, 0, 0)}
    assert audit_invariants().ok
