"""Every admin page an operator can open renders, with rows in it: the list, its search and filters,
and one object's page. (A list view that needs something of the database the data did not have,
such as a `date_hierarchy` on a datetime without MySQL's time zone tables, answered 500.)"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse

from orders.services import LineRequest, checkout_initiate
from orders.tests.helpers import fund, make_product
from payments.services import payment_process
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def some_of_everything():
    """An order paid, another pending: rows in orders, payments, stock, ledger and the outbox."""
    user = UserFactory()
    fund(user, 1_000_000)
    product = make_product(stock=10, price=1_000)
    paid = checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 1)])
    payment_process(user_id=user.pk, order_id=paid.pk, amount=paid.final_amount)
    checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 2)])


MODELS = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


@pytest.mark.parametrize("model, model_admin", MODELS, ids=[m._meta.label for m, _ in MODELS])
def test_every_admin_list_search_and_first_object_page_renders(operator, some_of_everything, model, model_admin):
    name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    listing = operator.get(reverse(f"{name}_changelist"))
    assert listing.status_code == 200, listing.content[:500]
    if model_admin.search_fields:
        assert operator.get(reverse(f"{name}_changelist"), {"q": "1"}).status_code == 200
    request = RequestFactory().get("/")
    request.user = listing.wsgi_request.user
    first = model_admin.get_queryset(request).order_by("pk").first()  # what the list shows
    if first is not None:
        page = operator.get(reverse(f"{name}_change", args=[first.pk]))
        assert page.status_code == 200, page.content[:500]
