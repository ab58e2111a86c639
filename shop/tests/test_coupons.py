"""Coupons: pricing, issuing (service and API), and the coupon's life with an order."""

import io
from datetime import datetime, timedelta

import pytest
from django.core.cache import caches
from django.db import transaction
from django.utils import timezone

from conftest import client_for
from outbox.models import OutboxEvent
from shop.errors import CouponNotUsable
from shop.models import Coupon, UserCoupon
from shop.services.coupons import (
    coupon_discount,
    coupon_sold_out_flagged,
    user_coupon_hold,
    user_coupon_quote,
    user_coupon_release,
    user_coupon_restore,
    user_coupon_use,
)
from shop.tests.factories import CouponFactory, UserFactory

pytestmark = pytest.mark.django_db

FIXED, PERCENT = Coupon.DiscountType.FIXED, Coupon.DiscountType.PERCENTAGE


# --- pricing (pure) ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "value", "minimum", "cap", "amount", "expected"),
    [
        (FIXED, 5_000, 20_000, None, 19_999, 0),  # below the minimum
        (FIXED, 5_000, 20_000, None, 20_000, 5_000),  # exactly the minimum
        (FIXED, 5_000, 0, None, 3_000, 3_000),  # FIXED larger than the amount: never above it
        (FIXED, 5_000, 0, None, 0, 0),  # empty order
        (FIXED, 5_000, 0, 2_000, 10_000, 2_000),  # a cap caps FIXED too
        (PERCENT, 10, 10_000, 20_000, 9_999, 0),  # below the minimum
        (PERCENT, 10, 10_000, 20_000, 55_555, 5_555),  # floor(5,555.5)
        (PERCENT, 10, 10_000, 20_000, 1_000_000, 20_000),  # capped
        (PERCENT, 10, 0, None, 1_000_000, 100_000),  # no cap
        (PERCENT, 100, 0, None, 12_345, 12_345),  # 100 %: the whole amount, no more
        (PERCENT, 100, 0, 10_000, 12_345, 10_000),  # 100 % with a cap
        (PERCENT, 1, 0, None, 99, 0),  # floor to 0
        (PERCENT, 0, 0, None, 10_000, 0),  # 0 %
        (PERCENT, 7, 30_000, 15_000, 30_001, 2_100),  # floor(2,100.07)
    ],
)
def test_coupon_discount_applies_minimum_cap_and_floor(kind, value, minimum, cap, amount, expected):
    coupon = Coupon(discount_type=kind, discount_value=value, minimum_order_amount=minimum, max_discount_amount=cap)
    assert coupon_discount(coupon=coupon, order_amount=amount) == expected


# --- issuing: API -----------------------------------------------------------------------------
def issue(client, coupon_id, **extra):
    return client.post("/api/v1/coupons/issue", {"couponId": coupon_id}, format="json", **extra)


def test_issue_then_already_issued(auth_api, user):
    coupon = CouponFactory(total_quantity=3)
    before = timezone.now()
    first = issue(auth_api, coupon.pk)
    assert first.status_code == 200
    user_coupon = UserCoupon.objects.get()
    assert before <= user_coupon.issued_at <= timezone.now()  # the row is written as SQL: its time as the ORM's
    assert (user_coupon.used_at, user_coupon.used_order_id, user_coupon.held_order_id) == (None, None, None)
    assert first.json() == {
        "success": True,
        "data": {"userCouponId": user_coupon.pk, "couponId": coupon.pk, "issuedQuantity": 1, "remainingQuantity": 2},
    }
    assert user_coupon.user == user and user_coupon.status == "ISSUED"
    event = OutboxEvent.objects.get()
    assert (event.aggregatetype, event.aggregateid, event.type) == ("coupon", str(coupon.pk), "CouponIssued")
    assert event.payload == {"userCouponId": user_coupon.pk, "couponId": coupon.pk, "userId": user.pk}

    again = issue(auth_api, coupon.pk)
    assert again.status_code == 409 and again.json()["errorCode"] == "COUPON_ALREADY_ISSUED"
    coupon.refresh_from_db()
    assert coupon.issued_quantity == 1 and UserCoupon.objects.count() == 1 and OutboxEvent.objects.count() == 1


def test_issue_with_user_id_in_query(auth_api, user, other_user):
    coupon = CouponFactory()
    assert (
        auth_api.post(f"/api/v1/coupons/issue?userId={user.pk}", {"couponId": coupon.pk}, format="json").status_code
        == 200
    )
    forbidden = auth_api.post(f"/api/v1/coupons/issue?userId={other_user.pk}", {"couponId": coupon.pk}, format="json")
    assert forbidden.status_code == 403 and forbidden.json()["errorCode"] == "FORBIDDEN"
    assert not UserCoupon.objects.filter(user=other_user).exists()


def test_issue_with_another_users_id_in_the_body_is_403_and_issues_nothing(auth_api, user, other_user):
    """The body's `userId` was ignored (the coupon went to the caller, 200) instead of the 403 rule."""
    coupon = CouponFactory()
    for body in ({"couponId": coupon.pk, "userId": other_user.pk}, {"couponId": coupon.pk, "userId": user.pk}):
        with_key = auth_api.post(
            f"/api/v1/coupons/issue?userId={user.pk}", body, format="json", HTTP_IDEMPOTENCY_KEY=f"k{body['userId']}"
        )
        without = auth_api.post("/api/v1/coupons/issue", body, format="json")
        if body["userId"] == other_user.pk:
            assert with_key.status_code == without.status_code == 403, with_key.json()
            assert with_key.json()["errorCode"] == without.json()["errorCode"] == "FORBIDDEN"
            assert UserCoupon.objects.count() == 0 and Coupon.objects.get(pk=coupon.pk).issued_quantity == 0
        else:  # the caller's own id is fine
            assert with_key.status_code == 200, with_key.json()
            assert without.status_code == 409 and without.json()["errorCode"] == "COUPON_ALREADY_ISSUED"
    assert list(UserCoupon.objects.values_list("user_id", flat=True)) == [user.pk]


@pytest.mark.parametrize("user_id", ["1", 1.0, True, "٥", 0])
def test_issue_refuses_a_body_user_id_that_is_not_a_positive_json_integer(auth_api, user_id):
    response = auth_api.post(
        "/api/v1/coupons/issue", {"couponId": CouponFactory().pk, "userId": user_id}, format="json"
    )
    assert response.status_code == 400 and response.json()["errorCode"] == "INVALID_INPUT"
    assert UserCoupon.objects.count() == 0


def test_sold_out_is_409_and_flags_the_coupon(auth_api):
    coupon = CouponFactory(total_quantity=1)
    assert issue(client_for(UserFactory()), coupon.pk).status_code == 200
    assert not coupon_sold_out_flagged(coupon_id=coupon.pk)
    refused = issue(auth_api, coupon.pk)
    assert refused.status_code == 409 and refused.json()["errorCode"] == "COUPON_SOLD_OUT"
    assert coupon_sold_out_flagged(coupon_id=coupon.pk)
    coupon.refresh_from_db()
    assert coupon.issued_quantity == 1 and UserCoupon.objects.count() == 1 and OutboxEvent.objects.count() == 1


def test_sold_out_flag_answers_without_touching_coupon_tables(auth_api):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    coupon = CouponFactory(total_quantity=1, issued_quantity=1)
    issue(auth_api, coupon.pk)  # sets the flag
    with CaptureQueriesContext(connection) as ctx:
        refused = issue(auth_api, coupon.pk)
    assert refused.json()["errorCode"] == "COUPON_SOLD_OUT"
    statements = [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert statements == []  # the stateless JWT reads no user row; the flag answers


@pytest.mark.parametrize(
    ("valid_from", "valid_to"), [(timedelta(hours=1), timedelta(days=1)), (-timedelta(days=2), -timedelta(seconds=1))]
)
def test_outside_the_window_is_400_not_active(auth_api, valid_from, valid_to):
    now = timezone.now()
    coupon = CouponFactory(valid_from=now + valid_from, valid_to=now + valid_to)
    refused = issue(auth_api, coupon.pk)
    assert refused.status_code == 400 and refused.json()["errorCode"] == "COUPON_NOT_ACTIVE"
    coupon.refresh_from_db()
    assert coupon.issued_quantity == 0 and UserCoupon.objects.count() == 0
    window = refused.json()["data"]  # read as SQL, converted as the ORM converts: the same instants, aware
    assert datetime.fromisoformat(window["validFrom"]) == coupon.valid_from
    assert datetime.fromisoformat(window["validTo"]) == coupon.valid_to


def test_unknown_coupon_is_404(auth_api):
    refused = issue(auth_api, 999_999)
    assert refused.status_code == 404 and refused.json()["errorCode"] == "COUPON_NOT_FOUND"
    assert UserCoupon.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"couponId": "1"},
        {"couponId": 1.0},
        {"couponId": 0},
        {"couponId": -3},
        {"couponId": True},
        {"couponId": None},
        {"couponId": 2**70},
        {"couponId": [1]},
    ],
)
def test_bad_coupon_id_is_400(auth_api, body):
    CouponFactory(id=1)
    refused = auth_api.post("/api/v1/coupons/issue", body, format="json")
    assert refused.status_code == 400 and refused.json()["errorCode"] == "INVALID_INPUT"
    assert UserCoupon.objects.count() == 0


def test_issue_requires_authentication(api):
    coupon = CouponFactory()
    assert issue(api, coupon.pk).status_code == 401
    assert UserCoupon.objects.count() == 0


def test_issue_is_idempotent_with_a_key(auth_api):
    coupon = CouponFactory()
    first = issue(auth_api, coupon.pk, HTTP_IDEMPOTENCY_KEY="k")
    replay = issue(auth_api, coupon.pk, HTTP_IDEMPOTENCY_KEY="k")
    assert first.status_code == replay.status_code == 200 and replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true"
    assert Coupon.objects.get(pk=coupon.pk).issued_quantity == 1


def test_issue_is_throttled_per_user(auth_api, settings):
    coupons = CouponFactory.create_batch(3)
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "coupon_issue": "2/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    statuses = [issue(auth_api, c.pk).status_code for c in coupons]
    assert statuses == [200, 200, 429]
    assert UserCoupon.objects.count() == 2


def test_redis_down_falls_back_to_the_database(auth_api, monkeypatch):
    """The sold-out flag is only an optimisation: with its cache failing, issuing still answers correctly."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    coupon = CouponFactory(total_quantity=1, issued_quantity=1)
    cache = caches["default"]

    def failing(method):
        def call(key, *args, **kwargs):
            if "soldout" in key:
                raise RedisConnectionError("down")
            return method(key, *args, **kwargs)

        return call

    monkeypatch.setattr(cache, "get", failing(cache.get))
    monkeypatch.setattr(cache, "set", failing(cache.set))
    for _ in range(2):  # the second request asks the database again: there is no flag
        refused = issue(auth_api, coupon.pk)
        assert refused.status_code == 409 and refused.json()["errorCode"] == "COUPON_SOLD_OUT"
    other = CouponFactory()
    assert issue(auth_api, other.pk).status_code == 200


# --- reads ------------------------------------------------------------------------------------
def test_list_issuable_coupons_is_public(api, django_assert_num_queries):
    now = timezone.now()
    live = CouponFactory(
        name="Live",
        discount_type=PERCENT,
        discount_value=10,
        max_discount_amount=5_000,
        total_quantity=10,
        issued_quantity=4,
    )
    CouponFactory(name="Sold out", total_quantity=2, issued_quantity=2)
    CouponFactory(name="Future", valid_from=now + timedelta(days=1))
    CouponFactory(name="Past", valid_from=now - timedelta(days=3), valid_to=now - timedelta(days=1))
    with django_assert_num_queries(1):
        response = api.get("/api/v1/coupons")
    assert response.status_code == 200
    rows = response.json()["data"]
    assert [row["name"] for row in rows] == ["Live"]
    assert {k: v for k, v in rows[0].items() if k not in ("validFrom", "validTo")} == {
        "id": live.pk,
        "name": "Live",
        "discountType": "PERCENTAGE",
        "discountValue": 10,
        "minimumOrderAmount": 0,
        "maxDiscountAmount": 5_000,
        "totalQuantity": 10,
        "issuedQuantity": 4,
        "remainingQuantity": 6,
    }


def test_a_users_coupons_newest_first_with_status_and_only_usable_ones_available(
    auth_api, user, other_user, django_assert_num_queries
):
    now = timezone.now()
    usable = UserCoupon.objects.create(user=user, coupon=CouponFactory(name="A"))
    used = UserCoupon.objects.create(
        user=user, coupon=CouponFactory(name="B"), status="USED", used_at=now, used_order_id=77
    )
    held = UserCoupon.objects.create(user=user, coupon=CouponFactory(name="C"), held_order_id=5)
    expired = UserCoupon.objects.create(
        user=user, coupon=CouponFactory(name="D", valid_from=now - timedelta(days=3), valid_to=now - timedelta(days=1))
    )
    UserCoupon.objects.create(user=other_user, coupon=CouponFactory(name="E"))

    with django_assert_num_queries(1):
        everything = auth_api.get(f"/api/v1/coupons/users/{user.pk}").json()["data"]
    assert [(r["id"], r["name"], r["status"]) for r in everything] == [
        (expired.pk, "D", "EXPIRED"),
        (held.pk, "C", "ISSUED"),
        (used.pk, "B", "USED"),
        (usable.pk, "A", "ISSUED"),
    ]
    assert everything[2]["usedOrderId"] == 77 and everything[2]["usedAt"] is not None
    assert set(everything[0]) == {"id", "couponId", "name", "status", "issuedAt", "usedAt", "usedOrderId"}
    available = auth_api.get(f"/api/v1/coupons/users/{user.pk}/available").json()["data"]
    assert [r["id"] for r in available] == [usable.pk]
    for url in (f"/api/v1/coupons/users/{other_user.pk}", f"/api/v1/coupons/users/{other_user.pk}/available"):
        assert auth_api.get(url).status_code == 403


# --- a coupon with an order ---------------------------------------------------------------------
@pytest.fixture
def held_setup(user):
    coupon = CouponFactory(
        discount_type=PERCENT, discount_value=10, minimum_order_amount=10_000, max_discount_amount=3_000
    )
    return UserCoupon.objects.create(user=user, coupon=coupon)


def reason(exc_info) -> str:
    return exc_info.value.data["reason"]


def test_quote_then_hold_then_use_then_restore(user, held_setup):
    uc, now = held_setup, timezone.now()
    with transaction.atomic():
        assert user_coupon_quote(user_coupon_id=uc.pk, user_id=user.pk, order_amount=20_000, now=now) == 2_000
        assert (
            user_coupon_hold(user_coupon_id=uc.pk, user_id=user.pk, order_amount=20_000, order_id=10, now=now) == 2_000
        )
        # holding again for the same order is a no-op
        assert (
            user_coupon_hold(user_coupon_id=uc.pk, user_id=user.pk, order_amount=20_000, order_id=10, now=now) == 2_000
        )
    uc.refresh_from_db()
    assert (uc.status, uc.held_order_id) == ("ISSUED", 10)

    with transaction.atomic(), pytest.raises(CouponNotUsable) as refused:
        user_coupon_quote(user_coupon_id=uc.pk, user_id=user.pk, order_amount=20_000, now=now)
    assert reason(refused) == "IN_USE" and refused.value.status == 409

    user_coupon_use(order_id=11, now=now)  # another order: nothing
    uc.refresh_from_db()
    assert uc.status == "ISSUED"
    user_coupon_use(order_id=10, now=now)
    uc.refresh_from_db()
    assert (uc.status, uc.used_order_id, uc.held_order_id, uc.used_at) == ("USED", 10, None, now)

    with transaction.atomic(), pytest.raises(CouponNotUsable) as refused:
        user_coupon_quote(user_coupon_id=uc.pk, user_id=user.pk, order_amount=20_000, now=now)
    assert reason(refused) == "NOT_ISSUED"

    user_coupon_release(order_id=10)  # a paid order's coupon is not "released"
    uc.refresh_from_db()
    assert uc.status == "USED"
    user_coupon_restore(order_id=10)
    uc.refresh_from_db()
    assert (uc.status, uc.used_order_id, uc.used_at, uc.held_order_id) == ("ISSUED", None, None, None)
    with transaction.atomic():
        assert user_coupon_quote(user_coupon_id=uc.pk, user_id=user.pk, order_amount=50_000, now=now) == 3_000


def test_release_frees_a_held_coupon(user, held_setup):
    uc, now = held_setup, timezone.now()
    with transaction.atomic():
        user_coupon_hold(user_coupon_id=uc.pk, user_id=user.pk, order_amount=20_000, order_id=3, now=now)
    user_coupon_release(order_id=3)
    uc.refresh_from_db()
    assert (uc.status, uc.held_order_id) == ("ISSUED", None)
    with transaction.atomic():
        assert (
            user_coupon_hold(user_coupon_id=uc.pk, user_id=user.pk, order_amount=20_000, order_id=4, now=now) == 2_000
        )


@pytest.mark.parametrize(
    ("setup", "amount", "at", "expected"),
    [
        ("other_user", 20_000, 0, "NOT_FOUND"),
        ("unknown", 20_000, 0, "NOT_FOUND"),
        ("expired_status", 20_000, 0, "NOT_ISSUED"),
        (None, 9_999, 0, "BELOW_MINIMUM"),
        (None, 20_000, -40, "NOT_YET_VALID"),
        (None, 20_000, 40, "EXPIRED"),
    ],
)
def test_not_usable_reasons(user, other_user, held_setup, setup, amount, at, expected):
    uc = held_setup
    user_id, user_coupon_id = user.pk, uc.pk
    if setup == "other_user":
        user_id = other_user.pk
    elif setup == "unknown":
        user_coupon_id = 987_654
    elif setup == "expired_status":
        UserCoupon.objects.filter(pk=uc.pk).update(status="EXPIRED")
    now = timezone.now() + timedelta(days=at)
    for call, extra in ((user_coupon_quote, {}), (user_coupon_hold, {"order_id": 1})):
        with transaction.atomic(), pytest.raises(CouponNotUsable) as refused:
            call(user_coupon_id=user_coupon_id, user_id=user_id, order_amount=amount, now=now, **extra)
        assert reason(refused) == expected and refused.value.code == "COUPON_NOT_USABLE"
    uc.refresh_from_db()
    assert uc.held_order_id is None


def test_quote_locks_only_the_user_coupon_row(user, held_setup, django_assert_num_queries):
    """Checkout must not lock the coupon row, which is the hot row of issuing."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
        user_coupon_quote(user_coupon_id=held_setup.pk, user_id=user.pk, order_amount=20_000, now=timezone.now())
    locking = [q["sql"] for q in ctx.captured_queries if "FOR UPDATE" in q["sql"]]
    assert len(locking) == 1 and "shop_usercoupon" in locking[0] and "shop_coupon`" not in locking[0].split("FROM")[1]


# --- admin ------------------------------------------------------------------------------------
def coupon_form(coupon, **changes):
    fields = ("name", "discount_type", "discount_value", "minimum_order_amount", "total_quantity")
    data = {name: getattr(coupon, name) for name in fields}
    local = {k: timezone.localtime(getattr(coupon, k)) for k in ("valid_from", "valid_to")}
    data.update({f"{k}_0": v.strftime("%Y-%m-%d") for k, v in local.items()})
    data.update({f"{k}_1": v.strftime("%H:%M:%S") for k, v in local.items()})
    data["max_discount_amount"] = coupon.max_discount_amount or ""
    return {**data, **changes}


def test_admin_lists_issued_and_remaining(operator):
    CouponFactory(name="Rush", total_quantity=100, issued_quantity=37)
    page = operator.get("/admin/shop/coupon/")
    assert page.status_code == 200
    assert b"Rush" in page.content and b">63<" in page.content and b">37<" in page.content
    assert operator.get("/admin/shop/usercoupon/").status_code == 200


def test_admin_save_never_writes_a_stale_issued_count(operator, django_capture_on_commit_callbacks):
    coupon = CouponFactory(total_quantity=100, issued_quantity=10)
    form = coupon_form(coupon, name="Renamed", total_quantity=200)
    Coupon.objects.filter(pk=coupon.pk).update(issued_quantity=55)  # issuing went on meanwhile
    caches["default"].set(f"coupon:soldout:{coupon.pk}", 1)
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(f"/admin/shop/coupon/{coupon.pk}/change/", form)
    assert response.status_code == 302, response.content[:2000]
    coupon.refresh_from_db()
    assert (coupon.name, coupon.total_quantity, coupon.issued_quantity) == ("Renamed", 200, 55)
    assert not coupon_sold_out_flagged(coupon_id=coupon.pk)  # more units: the flag is gone


def test_admin_refuses_a_total_below_issued(operator):
    coupon = CouponFactory(total_quantity=100, issued_quantity=60)
    response = operator.post(f"/admin/shop/coupon/{coupon.pk}/change/", coupon_form(coupon, total_quantity=59))
    assert response.status_code == 200 and b"60 units are already issued" in response.content
    assert Coupon.objects.get(pk=coupon.pk).total_quantity == 100


def test_reset_coupons_empties_only_the_named_coupons_and_their_flags(user, other_user):
    from django.core.management import call_command

    coupon = CouponFactory(total_quantity=2, issued_quantity=2)
    untouched = CouponFactory(total_quantity=5, issued_quantity=1)
    for u in (user, other_user):
        UserCoupon.objects.create(user=u, coupon=coupon)
    UserCoupon.objects.create(user=user, coupon=untouched)
    caches["default"].set(f"coupon:soldout:{coupon.pk}", 1)
    call_command("reset_coupons", ids=str(coupon.pk), stdout=io.StringIO())
    coupon.refresh_from_db()
    assert coupon.issued_quantity == 0 and not UserCoupon.objects.filter(coupon=coupon).exists()
    assert not coupon_sold_out_flagged(coupon_id=coupon.pk)
    assert UserCoupon.objects.filter(coupon=untouched).count() == 1
    assert Coupon.objects.get(pk=untouched.pk).issued_quantity == 1


def test_holder_of_a_sold_out_coupon_hears_sold_out(auth_api):
    """Sold-out is checked before "already issued", so the fast flag is set even when every unit
    went to the very users who keep asking (100 users racing for 100 units)."""
    coupon = CouponFactory(total_quantity=1)
    assert issue(auth_api, coupon.pk).status_code == 200
    again = issue(auth_api, coupon.pk)
    assert again.status_code == 409 and again.json()["errorCode"] == "COUPON_SOLD_OUT"
    assert coupon_sold_out_flagged(coupon_id=coupon.pk)
    assert UserCoupon.objects.count() == 1
