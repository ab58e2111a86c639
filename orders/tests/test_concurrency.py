"""Real threads against the real database; exact final counts."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from common.errors import DomainError
from inventory.models import Reservation, Stock
from orders.models import Order
from orders.services import LineRequest, checkout_initiate, order_expire
from orders.tests.helpers import balance_of, fund, give_coupon, make_product, stock_of
from payments.models import Payment
from payments.services import payment_process
from shop.models import PointHistory, UserCoupon
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _audit_after():
    """Whatever the interleaving, every invariant holds afterwards."""
    yield
    from common.audit import audit_invariants

    result = audit_invariants()
    assert result.ok, result.report()


def in_thread(fn):
    """Run fn in a worker thread; return ("ok", value) or ("refused", error code). Closes the connection."""

    def run(*args):
        try:
            return "ok", fn(*args)
        except DomainError as exc:
            return "refused", exc.code
        finally:
            connection.close()

    return run


def test_200_concurrent_checkouts_of_a_10_unit_product_make_exactly_10_orders():
    product = make_product(stock=10, price=1_000)
    users = UserFactory.create_batch(200)
    for u in users:
        fund(u, 10_000)

    @in_thread
    def buy(user):
        return checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 1)]).pk

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(buy, users))
    ok = [r for r in results if r[0] == "ok"]
    assert len(ok) == 10
    assert {r[1] for r in results if r[0] == "refused"} == {"INSUFFICIENT_STOCK"}
    assert Order.objects.count() == 10
    assert stock_of(product) == (10, 10)
    assert Reservation.objects.filter(product=product, status="ACTIVE").count() == 10
    assert Stock.objects.get(pk=product.pk).version == 10


def test_200_concurrent_checkouts_and_payments_of_a_10_unit_flash_product_sell_exactly_10():
    """Flash products reserve with one UPDATE (no locked read first), sent with the COMMIT and guarded by the
    stock row's CHECK constraints: exactly the units there are, and the payments that follow consume exactly
    them."""
    product = make_product(stock=10, price=1_000, is_flash_sale=True)
    users = UserFactory.create_batch(200)
    for u in users:
        fund(u, 10_000)

    @in_thread
    def buy_and_pay(user):
        order = checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 1)])
        return payment_process(user_id=user.pk, order_id=order.pk, amount=order.final_amount).pk

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(buy_and_pay, users))
    assert len([r for r in results if r[0] == "ok"]) == 10
    assert {r[1] for r in results if r[0] == "refused"} == {"INSUFFICIENT_STOCK"}
    assert Order.objects.filter(status="PAID").count() == Order.objects.count() == Payment.objects.count() == 10
    assert stock_of(product) == (0, 0)
    assert Reservation.objects.filter(product=product, status="CONSUMED").count() == 10
    assert Stock.objects.get(pk=product.pk).version == 20  # 10 reservations, 10 consumptions
    assert sum(balance_of(u) for u in users) == 200 * 10_000 - 10 * 1_000


def test_multi_line_orders_in_opposite_orders_never_deadlock_to_the_client():
    a, b, c = make_product(stock=1000), make_product(stock=1000), make_product(stock=1000)
    users = UserFactory.create_batch(60)
    for u in users:
        fund(u, 1_000_000)
    orders = [[a, b, c], [c, b, a], [b, c, a], [c, a, b]]

    @in_thread
    def buy(i):
        lines = [LineRequest(p.pk, 1 + i % 3) for p in orders[i % 4]]
        return checkout_initiate(user_id=users[i].pk, direct_items=lines).pk

    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(buy, range(60)))
    assert [r[0] for r in results] == ["ok"] * 60
    expected = sum(1 + i % 3 for i in range(60))
    for product in (a, b, c):
        assert stock_of(product) == (1000, expected)


@override_settings(MAX_OPEN_ORDERS_PER_USER=100)  # one user's 100 unpaid orders: the race, not the limit
def test_payment_racing_expiry_exactly_one_wins_100_times():
    product = make_product(stock=200, price=1_000)
    user = UserFactory()
    fund(user, 1_000_000)
    coupon_for = {}
    order_ids = []
    for i in range(100):
        user_coupon = give_coupon(user, discount_value=100) if i % 4 == 0 else None
        order = checkout_initiate(
            user_id=user.pk,
            direct_items=[LineRequest(product.pk, 1)],
            user_coupon_id=user_coupon.pk if user_coupon else None,
        )
        coupon_for[order.pk] = user_coupon
        order_ids.append(order.pk)
    later = timezone.now() + timedelta(hours=1)  # the expiry job sees every order as due

    for order_id in order_ids:
        order = Order.objects.get(pk=order_id)
        barrier = threading.Barrier(2)

        @in_thread
        def pay(o=order, b=barrier):
            b.wait()
            return payment_process(user_id=user.pk, order_id=o.pk, amount=o.final_amount).pk

        @in_thread
        def expire(o=order, b=barrier):
            b.wait()
            return order_expire(order_id=o.pk, now=later)

        with ThreadPoolExecutor(max_workers=2) as pool:
            paid, expired = pool.submit(pay), pool.submit(expire)
            paid, expired = paid.result(), expired.result()
        assert expired[0] == "ok"
        assert (paid[0] == "ok") != expired[1]  # exactly one of them won
        if paid[0] == "refused":
            assert paid[1] == "ORDER_NOT_PAYABLE"

    statuses = dict(Order.objects.filter(pk__in=order_ids).values_list("pk", "status"))
    assert set(statuses.values()) <= {"PAID", "EXPIRED"}
    paid_ids = {pk for pk, s in statuses.items() if s == "PAID"}
    debits = PointHistory.objects.filter(user=user, type="USE")
    assert set(debits.values_list("order_id", flat=True)) == paid_ids  # debited exactly when PAID
    assert set(Payment.objects.values_list("order_id", flat=True)) == paid_ids
    paid_amount = sum(Order.objects.get(pk=pk).final_amount for pk in paid_ids)
    assert balance_of(user) == 1_000_000 - paid_amount
    assert stock_of(product) == (200 - len(paid_ids), 0)
    for order_id, user_coupon in coupon_for.items():
        if user_coupon is None:
            continue
        uc = UserCoupon.objects.get(pk=user_coupon.pk)
        if order_id in paid_ids:
            assert (uc.status, uc.used_order_id) == ("USED", order_id)
        else:
            assert (uc.status, uc.held_order_id) == ("ISSUED", None)
    print(f"payment won {len(paid_ids)} races, expiry won {100 - len(paid_ids)}")


def test_one_user_concurrent_checkouts_and_payments_never_overdraw():
    product = make_product(stock=100, price=10_000)
    user = UserFactory()
    fund(user, 50_000)

    @in_thread
    def checkout_and_pay(_):
        order = checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 1)])
        return payment_process(user_id=user.pk, order_id=order.pk, amount=order.final_amount).pk

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(checkout_and_pay, range(12)))
    paid = [r for r in results if r[0] == "ok"]
    assert len(paid) == 5
    # refused by the balance, or while 5 orders were still unpaid (MAX_OPEN_ORDERS_PER_USER)
    assert {r[1] for r in results if r[0] == "refused"} <= {"INSUFFICIENT_BALANCE", "TOO_MANY_OPEN_ORDERS"}
    assert balance_of(user) == 0
    assert PointHistory.objects.filter(user=user, type="USE").count() == 5
    unpaid = Order.objects.filter(user=user).exclude(status="PAID")
    assert not PointHistory.objects.filter(order_id__in=unpaid.values("pk")).exists()
    ledger = sum(PointHistory.objects.filter(user=user).values_list("amount", flat=True))
    assert ledger == balance_of(user)


@override_settings(MAX_OPEN_ORDERS_PER_USER=120)  # one user's 120 due orders: the jobs, not the limit
def test_expiry_jobs_at_once_expire_each_due_order_exactly_once():
    """What two Celery beats (or a beat tick running late into the next) would do: four jobs start
    over the same 120 due orders at the same moment; each order is expired by exactly one of them
    (rows another job holds are skipped, not waited for; how the work splits is printed)."""
    from orders.services import expire_due_orders
    from outbox.models import OutboxEvent

    product = make_product(stock=120, price=1_000)
    user = UserFactory()
    fund(user, 1_000_000)
    order_ids = [checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 1)]).pk for _ in range(120)]
    later = timezone.now() + timedelta(hours=1)
    barrier = threading.Barrier(4)

    @in_thread
    def job():
        barrier.wait()
        return expire_due_orders(batch_size=2, now=later)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = [future.result() for future in [pool.submit(job) for _ in range(4)]]

    assert all(kind == "ok" for kind, _ in results)
    assert sum(count for _, count in results) == 120  # together exactly once each
    assert set(Order.objects.filter(pk__in=order_ids).values_list("status", flat=True)) == {"EXPIRED"}
    expired_events = OutboxEvent.objects.filter(type="OrderExpired", aggregateid__in=[str(pk) for pk in order_ids])
    assert expired_events.count() == 120
    assert stock_of(product) == (120, 0)
    assert Reservation.objects.filter(order_id__in=order_ids, status="ACTIVE").count() == 0
    print(f"expiry jobs split the 120 orders {[count for _, count in results]}")
