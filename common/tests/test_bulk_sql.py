"""`common.bulk_sql`: rows written out store what the ORM's `create` / `bulk_create` store."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from common.bulk_sql import insert_instance, insert_rows
from inventory.models import Reservation
from orders.models import Order, OrderItem
from payments.models import Payment
from shop.models import PointHistory
from shop.tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

EXPIRES = dt.datetime(2026, 12, 5, 8, 0, 0, 250000, tzinfo=dt.UTC)
STAMPS = {"id", "created_at", "updated_at"}  # the key and the clock differ between two rows


def stored(obj) -> dict:
    """Every column of the row as read back through the ORM, but the key and the time stamps."""
    row = type(obj).objects.get(pk=obj.pk)
    return {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields if f.attname not in STAMPS}


def order_fields(user, number: str) -> dict:
    return {
        "order_number": number,
        "user_id": user.pk,
        "total_amount": 3000,
        "final_amount": 3000,
        "delivery_address": "here",
        "expires_at": EXPIRES,
    }


def test_an_instance_is_stored_as_create_stores_it_and_comes_back_saved(user):
    before = timezone.now()
    via_orm = Order.objects.create(**order_fields(user, "O-ORM"))
    written = insert_instance(Order(**order_fields(user, "O-SQL")))

    assert written.pk is not None and written.pk > via_orm.pk
    assert not written._state.adding and written._state.db == "default"
    assert stored(written) | {"order_number": "O-ORM"} == stored(via_orm)
    assert stored(written)["status"] == Order.Status.PENDING_PAYMENT and stored(written)["expires_at"] == EXPIRES
    row = Order.objects.get(pk=written.pk)
    assert before <= row.created_at == written.created_at <= timezone.now()
    assert row.updated_at == written.updated_at


def test_the_payment_and_ledger_rows_of_a_payment(user):
    order = insert_instance(Order(**order_fields(user, "O-PAY")))
    for number, make in (("P-ORM", Payment.objects.create), ("P-SQL", lambda **kw: insert_instance(Payment(**kw)))):
        payment = make(payment_number=number, order=order, user_id=user.pk, amount=3000)
        assert stored(payment) == {
            "payment_number": number,
            "order_id": order.pk,
            "user_id": user.pk,
            "amount": 3000,
            "method": "BALANCE",
            "status": "COMPLETED",
            "refunded_at": None,
        }
        Payment.objects.filter(pk=payment.pk).delete()  # one payment per order

    fields = {"user_id": user.pk, "amount": -3000, "type": "USE", "balance_after": 7000, "order_id": None}
    orm, sql = PointHistory.objects.create(**fields), insert_instance(PointHistory(**fields))
    assert stored(orm) == stored(sql) == {**fields, "description": ""}


def test_rows_in_bulk_match_bulk_create(user):
    order = insert_instance(Order(**order_fields(user, "O-ITEMS")))
    products = ProductFactory.create_batch(2)
    items = [
        OrderItem(order=order, product_id=p.pk, product_name=p.name, quantity=2, unit_price=1500, line_total=3000)
        for p in products
    ]
    insert_rows(items)
    reservations = [Reservation(order_id=order.pk, product_id=p.pk, quantity=2, expires_at=EXPIRES) for p in products]
    insert_rows(reservations)

    rows = list(OrderItem.objects.filter(order=order).order_by("product_id").values())
    assert [{k: v for k, v in row.items() if k != "id"} for row in rows] == [
        {
            "order_id": order.pk,
            "product_id": p.pk,
            "product_name": p.name,
            "quantity": 2,
            "unit_price": 1500,
            "gift_wrap": False,
            "gift_message": "",
            "line_total": 3000,
            "cart_item_id": None,
            "cart_item_live": None,
        }
        for p in products
    ]
    held = Reservation.objects.filter(order_id=order.pk).order_by("product_id")
    assert [(r.product_id, r.quantity, r.status, r.expires_at) for r in held] == [
        (p.pk, 2, Reservation.Status.ACTIVE, EXPIRES) for p in products
    ]
