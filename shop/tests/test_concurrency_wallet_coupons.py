"""Real threads against the real MariaDB: exact final balances and counts under races.

Each worker runs the service (or the HTTP view) on its own connection and closes it afterwards.
A `Barrier` releases the workers together so the requests really overlap.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection
from django.db.models import Sum

from common.errors import DomainError
from conftest import client_for
from outbox.models import OutboxEvent
from shop.models import Coupon, PointHistory, PointWallet, UserCoupon
from shop.models.wallet import MAX_BALANCE
from shop.services.wallet import points_charge, points_debit
from shop.tests.factories import CouponFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 24


def race(calls: list[Callable[[], Any]], *, threads: int = THREADS) -> list[Any]:
    """Run every call on a pool of threads released together; returns results or raised DomainErrors.

    The barrier is sized to the pool: the first `threads` calls start at the same instant, the rest
    follow as workers free up (so the race lasts as long as the calls do).
    """
    barrier = threading.Barrier(min(threads, len(calls)))

    def run(index: int, call: Callable[[], Any]) -> Any:
        try:
            if index < barrier.parties:
                barrier.wait(timeout=30)
            return call()
        except DomainError as exc:
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(run, range(len(calls)), calls))


def codes(results: list[Any]) -> Counter:
    return Counter(r.code if isinstance(r, DomainError) else "OK" for r in results)


# --- wallet -----------------------------------------------------------------------------------
def test_50_concurrent_debits_never_overdraw():
    user = UserFactory()
    points_charge(user_id=user.pk, amount=100_000)
    debit = 7_000  # 100,000 // 7,000 = 14 succeed, 36 are refused
    results = race([lambda i=i: points_debit(user_id=user.pk, amount=debit, order_id=i) for i in range(1, 51)])
    assert codes(results) == Counter({"OK": 14, "INSUFFICIENT_BALANCE": 36})
    wallet = PointWallet.objects.get(user=user)
    assert wallet.balance == 100_000 - 14 * debit == 2_000
    history = PointHistory.objects.filter(user=user)
    assert history.aggregate(s=Sum("amount"))["s"] == wallet.balance
    assert history.filter(type="USE").count() == 14
    # every successful debit saw a distinct balance: the balances after form one descending chain
    afters = sorted(history.filter(type="USE").values_list("balance_after", flat=True))
    assert afters == [2_000 + k * debit for k in range(14)]


def test_concurrent_debits_of_one_order_debit_once():
    user = UserFactory()
    points_charge(user_id=user.pk, amount=100_000)
    results = race([lambda: points_debit(user_id=user.pk, amount=1_000, order_id=42) for _ in range(20)])
    assert codes(results) == Counter({"OK": 1, "ORDER_ALREADY_DEBITED": 19})
    assert PointWallet.objects.get(user=user).balance == 99_000
    assert PointHistory.objects.filter(order_id=42).count() == 1


def test_charges_racing_to_the_cap_never_exceed_it():
    user = UserFactory()
    points_charge(user_id=user.pk, amount=MAX_BALANCE - 1_000_000)
    charge = 300_000  # 1,000,000 // 300,000 = 3 succeed
    results = race([lambda: points_charge(user_id=user.pk, amount=charge) for _ in range(40)])
    assert codes(results) == Counter({"OK": 3, "POINT_LIMIT_EXCEEDED": 37})
    wallet = PointWallet.objects.get(user=user)
    assert wallet.balance == MAX_BALANCE - 100_000
    assert PointHistory.objects.filter(user=user).aggregate(s=Sum("amount"))["s"] == wallet.balance


def test_first_charges_racing_on_a_missing_wallet_create_one_wallet():
    user = UserFactory()
    results = race([lambda: points_charge(user_id=user.pk, amount=1_000) for _ in range(30)])
    assert codes(results) == Counter({"OK": 30})
    assert PointWallet.objects.get(user=user).balance == 30_000
    assert PointHistory.objects.filter(user=user).count() == 30


def test_http_charges_racing_to_the_cap():
    user = UserFactory()
    points_charge(user_id=user.pk, amount=MAX_BALANCE - 50_000)

    def charge():
        return client_for(user).post(f"/api/v1/points/{user.pk}/charge", {"amount": 10_000}, format="json")

    responses = race([charge for _ in range(16)], threads=16)
    assert Counter(r.status_code for r in responses) == Counter({200: 5, 400: 11})
    assert {r.json()["errorCode"] for r in responses if r.status_code == 400} == {"POINT_LIMIT_EXCEEDED"}
    assert PointWallet.objects.get(user=user).balance == MAX_BALANCE


# --- coupons ----------------------------------------------------------------------------------
def issue_call(user, coupon_id: int) -> Callable[[], Any]:
    client = client_for(user)
    return lambda: client.post("/api/v1/coupons/issue", {"couponId": coupon_id}, format="json")


def test_300_users_racing_for_100_coupons_get_exactly_100():
    coupon = CouponFactory(total_quantity=100)
    users = UserFactory.create_batch(300)
    responses = race([issue_call(u, coupon.pk) for u in users], threads=32)
    outcome = Counter("OK" if r.status_code == 200 else f"{r.status_code} {r.json()['errorCode']}" for r in responses)
    assert outcome == Counter({"OK": 100, "409 COUPON_SOLD_OUT": 200})
    coupon.refresh_from_db()
    assert coupon.issued_quantity == 100
    assert UserCoupon.objects.filter(coupon=coupon).count() == 100
    assert UserCoupon.objects.filter(coupon=coupon).values("user").distinct().count() == 100
    assert OutboxEvent.objects.filter(type="CouponIssued").count() == 100
    # every 200 names a row that exists, and the answered counts are 1..100 exactly once each
    ok = [r.json()["data"] for r in responses if r.status_code == 200]
    assert {d["userCouponId"] for d in ok} == set(UserCoupon.objects.filter(coupon=coupon).values_list("pk", flat=True))
    assert sorted(d["issuedQuantity"] for d in ok) == list(range(1, 101))


def test_one_user_racing_20_times_gets_exactly_one():
    coupon = CouponFactory(total_quantity=100)
    user = UserFactory()
    responses = race([issue_call(user, coupon.pk) for _ in range(20)], threads=20)
    outcome = Counter(r.json().get("errorCode", "OK") for r in responses)
    assert outcome == Counter({"OK": 1, "COUPON_ALREADY_ISSUED": 19})
    coupon.refresh_from_db()
    assert coupon.issued_quantity == 1
    assert UserCoupon.objects.filter(user=user).count() == 1
    assert OutboxEvent.objects.count() == 1


def test_one_user_racing_for_two_coupons_while_others_race_too():
    """Mixed traffic on one hot coupon: the unique key and the counter stay exact together."""
    coupon = CouponFactory(total_quantity=10)
    users = UserFactory.create_batch(15)
    calls = [issue_call(u, coupon.pk) for u in users for _ in range(3)]  # each user tries 3 times
    responses = race(calls, threads=24)
    assert sum(r.status_code == 200 for r in responses) == 10
    assert {r.json()["errorCode"] for r in responses if r.status_code != 200} <= {
        "COUPON_SOLD_OUT",
        "COUPON_ALREADY_ISSUED",
    }
    assert Coupon.objects.get(pk=coupon.pk).issued_quantity == 10
    assert UserCoupon.objects.filter(coupon=coupon).values("user").distinct().count() == 10
