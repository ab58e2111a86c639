"""The Order admin's force-expire and cancel actions: the same guarded services as the API and the
expiry job (stock, coupons, refunds, outbox), a per-order report, and the change permission."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from common.audit import audit_invariants
from inventory.models import Reservation
from orders.models import Order
from orders.services import LineRequest, checkout_initiate
from orders.tests.helpers import balance_of, fund, give_coupon, make_product, stock_of
from outbox.models import OutboxEvent
from payments.models import Payment
from payments.services import payment_process
from shop.models import PointHistory, UserCoupon
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/orders/order/"


def staff_client(*, superuser: bool = True, perms: tuple[str, ...] = ()) -> Client:
    staff = UserFactory(is_staff=True, is_superuser=superuser)
    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="orders", codename__in=perms))
    client = Client()
    client.force_login(staff)
    return client


def run_action(client: Client, action: str, orders) -> str:
    response = client.post(CHANGELIST, {"action": action, "_selected_action": [o.pk for o in orders]}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def place(user, product, quantity=1, **kwargs) -> Order:
    return checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, quantity)], **kwargs)


def pay(user, order) -> None:
    payment_process(user_id=user.pk, order_id=order.pk, amount=order.final_amount)


def snapshot(order) -> tuple:
    row = Order.objects.get(pk=order.pk)
    return row.status, row.updated_at, row.cancelled_at


def test_force_expire_releases_unpaid_orders_whatever_their_hold_and_skips_a_paid_one(user):
    fund(user, 100_000)
    product = make_product(stock=10, price=10_000)
    user_coupon = give_coupon(user, discount_value=1_000)
    fresh = place(user, product, 2, user_coupon_id=user_coupon.pk)  # hold ends in ~10 minutes
    overdue = place(user, product, 3)
    Order.objects.filter(pk=overdue.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    paid = place(user, product, 1)
    pay(user, paid)
    assert stock_of(product) == (9, 5)
    paid_before = snapshot(paid)

    page = run_action(staff_client(), "force_expire_selected", [fresh, overdue, paid])

    assert f"2 expired, 1 skipped: order {paid.pk} is PAID." in page
    assert Order.objects.get(pk=fresh.pk).status == "EXPIRED"
    assert Order.objects.get(pk=overdue.pk).status == "EXPIRED"
    assert stock_of(product) == (9, 0)  # the 5 held units are back on the shelf; the paid unit stays sold
    assert not Reservation.objects.filter(order_id__in=[fresh.pk, overdue.pk], status="ACTIVE").exists()
    assert Reservation.objects.filter(order_id__in=[fresh.pk, overdue.pk], status="RELEASED").count() == 2
    assert UserCoupon.objects.get(pk=user_coupon.pk).held_order_id is None
    events = OutboxEvent.objects.filter(type="OrderExpired").order_by("aggregateid")
    assert sorted(e.payload["orderId"] for e in events) == [fresh.pk, overdue.pk]
    assert all(e.payload["wasPaid"] is False and e.payload["reason"] == "EXPIRED" for e in events)
    assert snapshot(paid) == paid_before
    assert balance_of(user) == 100_000 - 10_000
    assert audit_invariants().ok


def test_force_expire_twice_changes_nothing_the_second_time(user):
    fund(user, 100_000)
    product = make_product(stock=4)
    order = place(user, product, 2)
    client = staff_client()
    assert "1 expired." in run_action(client, "force_expire_selected", [order])
    before = snapshot(order)

    page = run_action(client, "force_expire_selected", [order])

    assert f"0 expired, 1 skipped: order {order.pk} is EXPIRED." in page
    assert snapshot(order) == before
    assert stock_of(product) == (4, 0)
    assert OutboxEvent.objects.filter(type="OrderExpired").count() == 1
    assert audit_invariants().ok


def test_cancel_refunds_a_paid_order_releases_an_unpaid_one_and_skips_an_expired_one(user):
    fund(user, 100_000)
    product = make_product(stock=10, price=10_000)
    user_coupon = give_coupon(user, discount_value=1_000)
    paid = place(user, product, 2, user_coupon_id=user_coupon.pk)  # 20,000 - 1,000
    pay(user, paid)
    unpaid = place(user, product, 3)
    expired = place(user, product, 1)
    client = staff_client()
    run_action(client, "force_expire_selected", [expired])
    assert (balance_of(user), stock_of(product)) == (81_000, (8, 3))
    expired_before = snapshot(expired)

    page = run_action(client, "cancel_selected", [paid, unpaid, expired])

    assert f"2 cancelled, 1 skipped: order {expired.pk} is EXPIRED." in page
    assert Order.objects.get(pk=paid.pk).status == "CANCELLED"
    assert Order.objects.get(pk=unpaid.pk).status == "CANCELLED"
    assert Order.objects.get(pk=paid.pk).cancel_reason == "cancelled by operator"
    assert snapshot(expired) == expired_before
    assert balance_of(user) == 100_000
    assert list(PointHistory.objects.filter(user=user, type="REFUND").values_list("amount", flat=True)) == [19_000]
    assert Payment.objects.get(order=paid).status == "REFUNDED"
    assert stock_of(product) == (10, 0)  # 2 restocked, 3 released
    assert UserCoupon.objects.get(pk=user_coupon.pk).status == "ISSUED"
    cancelled = {e.payload["orderId"]: e.payload["wasPaid"] for e in OutboxEvent.objects.filter(type="OrderCancelled")}
    assert cancelled == {paid.pk: True, unpaid.pk: False}
    assert OutboxEvent.objects.filter(type="OrderExpired").count() == 1  # the earlier expiry only
    assert audit_invariants().ok


def test_the_actions_need_the_change_permission_on_orders(user):
    fund(user, 100_000)
    product = make_product(stock=5)
    order = place(user, product, 2)
    viewer = staff_client(superuser=False, perms=("view_order",))
    for action in ("force_expire_selected", "cancel_selected"):
        viewer.post(CHANGELIST, {"action": action, "_selected_action": [order.pk]})
    assert Order.objects.get(pk=order.pk).status == "PENDING_PAYMENT"
    assert stock_of(product) == (5, 2)
    assert not OutboxEvent.objects.filter(type__in=["OrderExpired", "OrderCancelled"]).exists()

    changer = staff_client(superuser=False, perms=("view_order", "change_order"))
    assert "1 cancelled." in run_action(changer, "cancel_selected", [order])
    assert Order.objects.get(pk=order.pk).status == "CANCELLED"
    assert stock_of(product) == (5, 0)
