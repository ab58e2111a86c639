"""Confirming paid orders locks those orders and nothing else (real MariaDB, a second connection)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.utils import timezone

from common.tests.test_mysql import other_connection
from orders.models import Order, OrderStatus
from orders.services import LineRequest, checkout_initiate, orders_confirm
from orders.tests.helpers import fund, make_product
from payments.services import payment_process
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_confirming_an_order_does_not_wait_for_another_orders_payment_in_flight():
    """A payment in flight holds the new ('PAID', ...) index entry of its order until it commits. The
    confirmation locks its own orders by primary key, so it does not wait for that payment (it did
    when its locking read scanned the status index: `innodb_lock_wait_timeout` below ends that wait)."""
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
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
        with transaction.atomic():
            assert orders_confirm(order_ids=paid) == set(paid)
    finally:
        other.rollback()
        other.close()
        connection.close()  # the session's lock wait timeout goes with it
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
