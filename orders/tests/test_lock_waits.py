"""Who waits for which row lock: a second connection holds a lock, and Django's session, with a 1 s
`innodb_lock_wait_timeout`, must not wait for it (real MariaDB)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.utils import timezone

from common.errors import BusyRetry
from common.tests.test_mysql import other_connection
from inventory.errors import InsufficientStock
from orders.models import Order, OrderStatus
from orders.services import LineRequest, checkout_initiate, orders_confirm
from orders.tests.helpers import fund, make_product
from payments.services import payment_process
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


def test_confirming_an_order_does_not_wait_for_another_orders_payment_in_flight(short_lock_waits):
    """A payment in flight holds the new ('PAID', ...) index entry of its order until it commits. The
    confirmation locks its own orders by primary key, so it does not wait for that payment (it did
    when its locking read scanned the status index)."""
    user = UserFactory()
    fund(user, 100_000)
    product = make_product(stock=10, price=1_000)
    _confirmed_history(user, 500)  # as after a sale: few PAID orders among many, the status index looks selective
    paid = []
    for _ in range(3):
        order = checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 1)])
        payment_process(user_id=user.pk, order_id=order.pk, amount=order.final_amount)
        paid.append(order.pk)
    in_flight = checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 1)])

    other = other_connection()
    try:
        with other.cursor() as cursor:  # another session's payment, not committed yet
            cursor.execute("BEGIN")
            cursor.execute("UPDATE orders_order SET status = 'PAID' WHERE id = %s", [in_flight.pk])
        with transaction.atomic():
            assert orders_confirm(order_ids=paid) == set(paid)
    finally:
        other.rollback()
        other.close()
    assert set(Order.objects.filter(pk__in=paid).values_list("status", flat=True)) == {OrderStatus.CONFIRMED}
    in_flight.refresh_from_db()
    assert in_flight.status == OrderStatus.PENDING_PAYMENT


def _confirmed_history(user, count: int) -> None:
    now = timezone.now()
    Order.objects.bulk_create(
        Order(
            order_number=f"OTEST{i:08d}",
            user=user,
            status=OrderStatus.CONFIRMED,
            total_amount=1_000,
            final_amount=1_000,
            expires_at=now,
        )
        for i in range(count)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE TABLE orders_order")
        cursor.fetchall()
