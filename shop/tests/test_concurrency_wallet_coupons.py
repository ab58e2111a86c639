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
from shop.models import Coupon, PointHistory, PointWallet, UserCoupon
from shop.models.wallet import MAX_BALANCE
from shop.services.wallet import points_charge, points_debit
from shop.tests.factories import CouponFactory, UserFactory
from outbox.models import OutboxEvent

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
