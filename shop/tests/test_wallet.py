"""Points wallet: services (as checkout/payment call them) and the three endpoints."""

import pytest
from django.db import transaction

from common.errors import ValidationFailed
from conftest import client_for
from shop.errors import (
    InsufficientBalance,
    OrderAlreadyDebited,
    OrderAlreadyRefunded,
    PointLimitExceeded,
    RefundExceedsDebit,
    RefundLimitExceeded,
)
from shop.models import PointHistory, PointWallet
from shop.models.wallet import MAX_BALANCE
from shop.selectors.wallet import points_balance
from shop.services.wallet import points_charge, points_debit, points_refund

pytestmark = pytest.mark.django_db


def ledger(user) -> list[tuple[str, int, int, int | None]]:
    return list(
        PointHistory.objects.filter(user=user).order_by("pk").values_list("type", "amount", "balance_after", "order_id")
    )


def wallet_balance(user) -> int:
    return PointWallet.objects.get(user=user).balance


# --- services ---------------------------------------------------------------------------------
def test_no_wallet_means_balance_zero(user):
    assert points_balance(user_id=user.pk) == 0
    assert not PointWallet.objects.filter(user=user).exists()


def test_charge_creates_the_wallet_and_writes_the_ledger(user):
    assert points_charge(user_id=user.pk, amount=5_000, description="top up") == 5_000
    assert points_charge(user_id=user.pk, amount=2_000) == 7_000
    assert wallet_balance(user) == 7_000
    assert ledger(user) == [("CHARGE", 5_000, 5_000, None), ("CHARGE", 2_000, 7_000, None)]
    assert PointHistory.objects.filter(user=user).first().description == "top up"


def test_charge_up_to_the_cap_exactly_then_refused(user):
    points_charge(user_id=user.pk, amount=MAX_BALANCE - 1)
    assert points_charge(user_id=user.pk, amount=1) == MAX_BALANCE
    with pytest.raises(PointLimitExceeded) as refused:
        points_charge(user_id=user.pk, amount=1)
    assert refused.value.status == 400 and refused.value.code == "POINT_LIMIT_EXCEEDED"
    assert refused.value.data == {"balance": MAX_BALANCE, "amount": 1, "maxBalance": MAX_BALANCE}
    assert wallet_balance(user) == MAX_BALANCE
    assert len(ledger(user)) == 2


def test_charge_over_the_cap_on_a_new_wallet_leaves_it_empty(user):
    with pytest.raises(ValidationFailed):
        points_charge(user_id=user.pk, amount=MAX_BALANCE + 1)
    assert points_balance(user_id=user.pk) == 0 and ledger(user) == []


@pytest.mark.parametrize("amount", [0, -1, 1.5, "10", True, MAX_BALANCE + 1])
def test_service_rejects_bad_amounts(user, amount):
    with pytest.raises(ValidationFailed) as refused:
        points_charge(user_id=user.pk, amount=amount)
    assert refused.value.code == "INVALID_AMOUNT"
    assert ledger(user) == []


def test_debit_takes_points_and_writes_a_use_row(user):
    points_charge(user_id=user.pk, amount=10_000)
    assert points_debit(user_id=user.pk, amount=3_000, order_id=77, description="order 77") == 7_000
    assert ledger(user)[-1] == ("USE", -3_000, 7_000, 77)


def test_debit_of_everything_then_insufficient(user):
    points_charge(user_id=user.pk, amount=10_000)
    assert points_debit(user_id=user.pk, amount=10_000, order_id=1) == 0
    with pytest.raises(InsufficientBalance) as refused:
        points_debit(user_id=user.pk, amount=1, order_id=2)
    assert refused.value.status == 409 and refused.value.code == "INSUFFICIENT_BALANCE"
    assert refused.value.data == {"required": 1, "balance": 0}
    assert wallet_balance(user) == 0 and len(ledger(user)) == 2


def test_debit_without_a_wallet_is_insufficient(user):
    with pytest.raises(InsufficientBalance) as refused:
        points_debit(user_id=user.pk, amount=100, order_id=1)
    assert refused.value.data == {"required": 100, "balance": 0}
    assert not PointWallet.objects.filter(user=user).exists()


def test_second_debit_for_one_order_is_refused_and_undone(user):
    points_charge(user_id=user.pk, amount=10_000)
    points_debit(user_id=user.pk, amount=1_000, order_id=5)
    with pytest.raises(OrderAlreadyDebited) as refused:
        points_debit(user_id=user.pk, amount=1_000, order_id=5)
    assert refused.value.status == 409 and refused.value.code == "ORDER_ALREADY_DEBITED"
    assert wallet_balance(user) == 9_000
    assert [row[0] for row in ledger(user)] == ["CHARGE", "USE"]


def test_zero_debit_records_the_order(user):
    """An order paid entirely by a coupon still gets its one USE row."""
    assert points_debit(user_id=user.pk, amount=0, order_id=9) == 0  # no wallet yet: created empty
    assert ledger(user) == [("USE", 0, 0, 9)]
    points_charge(user_id=user.pk, amount=100)
    assert points_debit(user_id=user.pk, amount=0, order_id=10) == 100
    assert ledger(user)[-1] == ("USE", 0, 100, 10)


def test_refusal_inside_the_callers_transaction_undoes_only_itself(user):
    """Payment calls these inside its own transaction: a refusal rolls back to the savepoint."""
    points_charge(user_id=user.pk, amount=1_000)
    with transaction.atomic():
        points_debit(user_id=user.pk, amount=400, order_id=1)
        with pytest.raises(OrderAlreadyDebited):
            points_debit(user_id=user.pk, amount=400, order_id=1)
        with pytest.raises(InsufficientBalance):
            points_debit(user_id=user.pk, amount=601, order_id=2)
        assert points_debit(user_id=user.pk, amount=600, order_id=3) == 0
    assert wallet_balance(user) == 0
    assert [row[3] for row in ledger(user)] == [None, 1, 3]


def test_refund_gives_back_once(user):
    points_charge(user_id=user.pk, amount=10_000)
    points_debit(user_id=user.pk, amount=4_000, order_id=8)
    assert points_refund(user_id=user.pk, amount=4_000, order_id=8, description="cancel") == 10_000
    with pytest.raises(OrderAlreadyRefunded) as refused:
        points_refund(user_id=user.pk, amount=4_000, order_id=8)
    assert refused.value.status == 409 and refused.value.code == "ORDER_ALREADY_REFUNDED"
    assert wallet_balance(user) == 10_000
    assert ledger(user)[-1] == ("REFUND", 4_000, 10_000, 8)


def test_refund_must_match_a_debit_of_this_user(user, other_user):
    points_charge(user_id=user.pk, amount=10_000)
    points_debit(user_id=user.pk, amount=1_000, order_id=3)
    for kwargs in (
        {"user_id": user.pk, "amount": 1_001, "order_id": 3},  # more than was debited
        {"user_id": user.pk, "amount": 10, "order_id": 4},  # never debited
        {"user_id": other_user.pk, "amount": 1_000, "order_id": 3},  # someone else's order
    ):
        with pytest.raises(RefundExceedsDebit):
            points_refund(**kwargs)
    assert wallet_balance(user) == 9_000 and points_balance(user_id=other_user.pk) == 0
    assert len(ledger(user)) == 2


def test_refund_above_the_cap_is_409_and_changes_nothing(user):
    points_charge(user_id=user.pk, amount=5_000)
    points_debit(user_id=user.pk, amount=5_000, order_id=1)
    points_charge(user_id=user.pk, amount=MAX_BALANCE - 1_000)
    with pytest.raises(RefundLimitExceeded) as refused:
        points_refund(user_id=user.pk, amount=5_000, order_id=1)
    assert refused.value.status == 409 and refused.value.code == "POINT_LIMIT_EXCEEDED"
    assert wallet_balance(user) == MAX_BALANCE - 1_000
    assert not PointHistory.objects.filter(type="REFUND").exists()


def test_ledger_sums_to_the_balance(user):
    points_charge(user_id=user.pk, amount=50_000)
    points_debit(user_id=user.pk, amount=12_345, order_id=1)
    points_refund(user_id=user.pk, amount=12_345, order_id=1)
    points_debit(user_id=user.pk, amount=7, order_id=2)
    assert sum(row[1] for row in ledger(user)) == wallet_balance(user) == 49_993


# --- API --------------------------------------------------------------------------------------
def test_balance_is_zero_without_a_wallet_and_read_in_one_query(auth_api, user, django_assert_num_queries):
    assert auth_api.get(f"/api/v1/points/{user.pk}").json() == {
        "success": True,
        "data": {"userId": user.pk, "balance": 0},
    }
    points_charge(user_id=user.pk, amount=1_234)
    with django_assert_num_queries(1):  # the wallet (the JWT is stateless)
        response = auth_api.get(f"/api/v1/points/{user.pk}")
    assert response.json()["data"] == {"userId": user.pk, "balance": 1_234}


def test_charge_credits_the_balance_and_writes_one_ledger_row(auth_api, user):
    response = auth_api.post(f"/api/v1/points/{user.pk}/charge", {"amount": 10_000, "description": "hi"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"success": True, "data": {"userId": user.pk, "balance": 10_000}}
    assert ledger(user) == [("CHARGE", 10_000, 10_000, None)]


def test_charge_with_idempotency_key_replays(auth_api, user):
    for _ in range(2):
        response = auth_api.post(
            f"/api/v1/points/{user.pk}/charge", {"amount": 500}, format="json", HTTP_IDEMPOTENCY_KEY="c-1"
        )
        assert response.json()["data"] == {"userId": user.pk, "balance": 500}
    assert wallet_balance(user) == 500 and len(ledger(user)) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 0},
        {"amount": -5},
        {"amount": MAX_BALANCE + 1},
        {"amount": "100"},
        {"amount": 100.0},
        {"amount": 1.5},
        {"amount": True},
        {"amount": None},
        {},
        {"amount": 10**30},
        {"amount": 100, "description": "x" * 256},
        {"amount": [100]},
    ],
)
def test_charge_bad_input_is_400_and_changes_nothing(auth_api, user, body):
    points_charge(user_id=user.pk, amount=1_000)
    response = auth_api.post(f"/api/v1/points/{user.pk}/charge", body, format="json")
    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_INPUT"
    assert wallet_balance(user) == 1_000 and len(ledger(user)) == 1


def test_charge_over_the_cap_is_400_point_limit_exceeded(auth_api, user):
    points_charge(user_id=user.pk, amount=MAX_BALANCE - 10)
    response = auth_api.post(f"/api/v1/points/{user.pk}/charge", {"amount": 11}, format="json")
    assert response.status_code == 400
    assert response.json()["errorCode"] == "POINT_LIMIT_EXCEEDED"
    assert response.json()["data"] == {"balance": MAX_BALANCE - 10, "amount": 11, "maxBalance": MAX_BALANCE}
    assert wallet_balance(user) == MAX_BALANCE - 10 and len(ledger(user)) == 1


def test_another_users_wallet_is_403_and_changes_nothing(auth_api, other_user):
    points_charge(user_id=other_user.pk, amount=1_000)
    for method, url in (
        ("get", f"/api/v1/points/{other_user.pk}"),
        ("post", f"/api/v1/points/{other_user.pk}/charge"),
        ("get", f"/api/v1/points/{other_user.pk}/histories"),
    ):
        response = getattr(auth_api, method)(url, {"amount": 5} if method == "post" else None, format="json")
        assert response.status_code == 403, url
        assert response.json()["errorCode"] == "FORBIDDEN"
    assert wallet_balance(other_user) == 1_000 and len(ledger(other_user)) == 1


def test_unauthenticated_is_401(api, user):
    assert api.get(f"/api/v1/points/{user.pk}").status_code == 401
    assert api.post(f"/api/v1/points/{user.pk}/charge", {"amount": 5}, format="json").status_code == 401


def test_zero_user_id_is_400(auth_api):
    assert auth_api.get("/api/v1/points/0").json()["errorCode"] == "INVALID_PARAMETER"


def test_histories_page_newest_first(auth_api, user, other_user):
    for amount in range(1, 6):
        points_charge(user_id=user.pk, amount=amount)
    points_charge(user_id=other_user.pk, amount=99)
    first = auth_api.get(f"/api/v1/points/{user.pk}/histories", {"size": 2}).json()["data"]
    assert [row["amount"] for row in first["contents"]] == [5, 4]
    assert first["contents"][0]["balanceAfter"] == 15 and first["contents"][0]["type"] == "CHARGE"
    assert set(first["contents"][0]) == {"id", "amount", "type", "balanceAfter", "orderId", "description", "createdAt"}
    second = auth_api.get(f"/api/v1/points/{user.pk}/histories", {"size": 2, "lastId": first["lastId"]}).json()["data"]
    assert [row["amount"] for row in second["contents"]] == [3, 2]
    third = auth_api.get(f"/api/v1/points/{user.pk}/histories", {"size": 2, "lastId": second["lastId"]}).json()["data"]
    assert [row["amount"] for row in third["contents"]] == [1] and third["lastId"] is None


@pytest.mark.parametrize("query", [{"size": 0}, {"size": 101}, {"size": "x"}, {"lastId": "-1"}, {"lastId": "1e3"}])
def test_histories_bad_cursor_is_400(auth_api, user, query):
    response = auth_api.get(f"/api/v1/points/{user.pk}/histories", query)
    assert response.status_code == 400 and response.json()["errorCode"] == "INVALID_PARAMETER"


def test_histories_of_a_user_without_wallet_is_empty(user):
    response = client_for(user).get(f"/api/v1/points/{user.pk}/histories")
    assert response.json()["data"] == {"contents": [], "lastId": None}


def test_admin_wallet_page_shows_the_ledger(operator, user):
    points_charge(user_id=user.pk, amount=12_345, description="welcome")
    assert operator.get("/admin/shop/pointwallet/").status_code == 200
    page = operator.get(f"/admin/shop/pointwallet/{user.pk}/change/")
    assert page.status_code == 200 and b"12,345" in page.content and b"welcome" in page.content
    assert operator.get("/admin/shop/pointhistory/").status_code == 200
