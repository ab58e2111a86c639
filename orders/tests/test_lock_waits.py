"""Who waits for which row lock: a second connection holds a lock, and Django's session, with a 1 s
`innodb_lock_wait_timeout`, must not wait for it (real MariaDB)."""

from __future__ import annotations

import pytest
from django.db import connection

from common.errors import BusyRetry
from common.tests.test_mysql import other_connection
from inventory.errors import InsufficientStock
from orders.models import Order
from orders.services import LineRequest, checkout_initiate
from orders.tests.helpers import fund, make_product
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def short_lock_waits():
    """Django's session gives up on a row lock after 1 s (the session goes with the connection)."""
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
    yield
    connection.close()


def test_a_sold_out_flash_product_is_refused_while_its_stock_row_is_locked(short_lock_waits):
    """The old service's incident 2: buyers of a sold-out product queued behind its row lock. The row's
    plain read refuses them before any lock, so a held lock (the last buyer's write, an operator's
    restock) keeps no one waiting."""
    product = make_product(stock=1, price=1_000, is_flash_sale=True)
    first, late = UserFactory(), UserFactory()
    fund(first, 10_000)
    fund(late, 10_000)
    checkout_initiate(user_id=first.pk, direct_items=[LineRequest(product.pk, 1)])
    other = other_connection()
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT * FROM inventory_stock WHERE product_id = %s FOR UPDATE", [product.pk])
        with pytest.raises(InsufficientStock):  # not BusyRetry: the lock wait would time out after 1 s
            checkout_initiate(user_id=late.pk, direct_items=[LineRequest(product.pk, 1)])
        ordinary = make_product(stock=5, price=1_000)
        with other.cursor() as cursor:
            cursor.execute("SELECT * FROM inventory_stock WHERE product_id = %s FOR UPDATE", [ordinary.pk])
        with pytest.raises(BusyRetry):  # the control: a product in stock does wait for its row
            checkout_initiate(user_id=late.pk, direct_items=[LineRequest(ordinary.pk, 1)])
    finally:
        other.rollback()
        other.close()
    assert Order.objects.filter(user=late).count() == 0
