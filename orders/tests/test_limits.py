"""Per-user limits against stock hoarding (orders/limits.py), on every path, with real threads where
the point is a race: one user's concurrent checkouts cannot both pass a limit."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import override_settings

from common.audit import audit_invariants
from common.errors import DomainError
from inventory.models import Reservation
from orders.models import Order, OrderItem, QueueRequest
from orders.queue.admission import queue_request_enqueue
from orders.queue.allocation import queue_process_batch
from orders.services import LineRequest, checkout_initiate, order_cancel, order_force_expire
from orders.tests.helpers import fund, make_product, stock_of
from payments.services import payment_process
from shop.models import CartItem
from shop.services.cart import cart_item_set, cart_item_update_quantity
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _audit_after():
    yield
    result = audit_invariants()
    assert result.ok, result.report()


def race(fn, count: int) -> list[tuple[str, object]]:
    """Run fn(i) in `count` threads released together: ("ok", value) or ("refused", error code)."""
    barrier = threading.Barrier(count)

    def one(i):
        barrier.wait()
        try:
            return "ok", fn(i)
        except DomainError as exc:
            return "refused", exc.code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def codes(results) -> list:
    return sorted(str(value) for kind, value in results if kind == "refused")


@pytest.fixture
def shopper():
    user = UserFactory()
    fund(user, 1_000_000)
    return user


# --- open orders and held units ------------------------------------------------------------------


@override_settings(MAX_OPEN_ORDERS_PER_USER=5)
def test_20_concurrent_checkouts_of_one_user_make_exactly_5_open_orders(shopper):
    product = make_product(stock=100, price=1_000)

    results = race(lambda _: checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(product.pk, 1)]).pk, 20)

    assert [kind for kind, _ in results].count("ok") == 5
    assert codes(results) == ["TOO_MANY_OPEN_ORDERS"] * 15
    assert Order.objects.filter(user=shopper, status="PENDING_PAYMENT").count() == 5
    assert stock_of(product) == (100, 5)
    assert Reservation.objects.filter(product=product, status="ACTIVE").count() == 5


@override_settings(MAX_OPEN_ORDERS_PER_USER=5)
def test_a_paid_or_cancelled_order_no_longer_counts_as_open(shopper):
    product = make_product(stock=100, price=1_000)
    orders = [checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(product.pk, 1)]) for _ in range(5)]
    with pytest.raises(DomainError) as refused:
        checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(product.pk, 1)])
    assert refused.value.code == "TOO_MANY_OPEN_ORDERS" and refused.value.status == 409
    assert refused.value.data == {"limit": 5, "current": 5}

    payment_process(user_id=shopper.pk, order_id=orders[0].pk, amount=orders[0].final_amount)
    order_cancel(order_id=orders[1].pk, user_id=shopper.pk)
    for _ in range(2):
        checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(product.pk, 1)])
    assert Order.objects.filter(user=shopper, status="PENDING_PAYMENT").count() == 5


@override_settings(MAX_HELD_UNITS_PER_USER=200)
def test_10_concurrent_checkouts_of_50_units_hold_exactly_200(shopper):
    product = make_product(stock=1_000, price=100)

    results = race(lambda _: checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(product.pk, 50)]).pk, 10)

    assert [kind for kind, _ in results].count("ok") == 4
    assert codes(results) == ["HELD_UNITS_LIMIT"] * 6
    assert stock_of(product) == (1_000, 200)


def test_the_hoarding_of_issue_15_is_refused(shopper):
    """One user, 99-unit orders of one product: 2 fit under 200 held units, the third is refused and
    the stock stays for others."""
    product = make_product(stock=10_000, price=10)
    for _ in range(2):
        checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(product.pk, 99)])
    with pytest.raises(DomainError) as refused:
        checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(product.pk, 99)])
    assert refused.value.code == "HELD_UNITS_LIMIT"
    assert refused.value.data == {"limit": 200, "current": 198, "requested": 99}
    other = UserFactory()
    fund(other, 1_000_000)
    checkout_initiate(user_id=other.pk, direct_items=[LineRequest(product.pk, 99)])
    assert stock_of(product) == (10_000, 297)


# --- flash-sale purchase limit -------------------------------------------------------------------


@override_settings(FLASH_SALE_MAX_PER_USER=2)
def test_10_concurrent_synchronous_checkouts_of_a_flash_product_sell_one_user_exactly_2(shopper):
    flash = make_product(stock=100, price=1_000, is_flash_sale=True)

    results = race(lambda _: checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(flash.pk, 1)]).pk, 10)

    assert [kind for kind, _ in results].count("ok") == 2
    assert codes(results) == ["PURCHASE_LIMIT_EXCEEDED"] * 8
    assert stock_of(flash) == (100, 2)


@override_settings(FLASH_SALE_MAX_PER_USER=2)
def test_paid_units_count_cancelled_and_expired_ones_do_not(shopper):
    flash = make_product(stock=100, price=1_000, is_flash_sale=True)
    paid = checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(flash.pk, 1)])
    payment_process(user_id=shopper.pk, order_id=paid.pk, amount=paid.final_amount)
    cancelled = checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(flash.pk, 1)])
    order_cancel(order_id=cancelled.pk, user_id=shopper.pk)
    expired = checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(flash.pk, 1)])
    order_force_expire(order_id=expired.pk)
    checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(flash.pk, 1)])  # paid 1 + this 1 = 2

    with pytest.raises(DomainError) as refused:
        checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(flash.pk, 1)])
    assert refused.value.code == "PURCHASE_LIMIT_EXCEEDED"
    assert refused.value.data == {"productId": flash.pk, "limit": 2, "current": 2, "requested": 1}


@override_settings(FLASH_SALE_MAX_PER_USER=2)
def test_every_http_path_enforces_the_flash_limit(auth_api, user):
    fund(user, 1_000_000)
    flash = make_product(stock=100, price=1_000, is_flash_sale=True)
    line = {"productId": flash.pk, "quantity": 3}

    for path, body in (
        ("/api/v1/checkout/initiate", {"directOrderItems": [line]}),
        ("/api/v1/orders", {"items": [line]}),
    ):
        response = auth_api.post(path, body, format="json")
        assert response.status_code == 409, response.json()
        assert response.json()["errorCode"] == "PURCHASE_LIMIT_EXCEEDED"
        assert response.json()["data"] == {"productId": flash.pk, "limit": 2, "current": 0, "requested": 3}

    # the cart may hold the product, capped at the limit
    response = auth_api.post("/api/v1/cart/items", line, format="json")
    assert response.status_code == 409 and response.json()["errorCode"] == "PURCHASE_LIMIT_EXCEEDED"
    assert response.json()["data"] == {"productId": flash.pk, "limit": 2, "requested": 3}
    item = cart_item_set(user_id=user.pk, product_id=flash.pk, quantity=2).line(flash.pk)
    with pytest.raises(DomainError) as refused:
        cart_item_update_quantity(user_id=user.pk, item_id=item.pk, quantity=3)
    assert refused.value.code == "PURCHASE_LIMIT_EXCEEDED"

    # a cart checkout counts what the user already bought
    checkout_initiate(user_id=user.pk, direct_items=[LineRequest(flash.pk, 1)])
    response = auth_api.post("/api/v1/checkout/initiate", {"cartItemIds": [item.pk]}, format="json")
    assert response.status_code == 409 and response.json()["data"]["current"] == 1
    assert stock_of(flash) == (100, 1)


@override_settings(FLASH_SALE_MAX_PER_USER=2)
def test_the_queue_refuses_at_admission_and_allocation_is_the_authority(shopper):
    flash = make_product(stock=100, price=1_000, is_flash_sale=True)
    with pytest.raises(DomainError) as refused:
        queue_request_enqueue(user_id=shopper.pk, product_id=flash.pk, quantity=3)
    assert refused.value.code == "PURCHASE_LIMIT_EXCEEDED"
    assert not QueueRequest.objects.exists()

    # admitted with nothing bought yet (a row as admission inserts it) ...
    request = QueueRequest.objects.create(
        request_id="00000000-0000-0000-0000-000000000015", user=shopper, product=flash, quantity=2, queue_position=1
    )
    # ... then the user buys 1 synchronously before the consumer answers: 1 + 2 > 2
    checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(flash.pk, 1)])
    queue_process_batch(request_ids=[request.request_id])

    request.refresh_from_db()
    assert (request.status, request.error_code, request.order_id) == ("FAILED", "PURCHASE_LIMIT_EXCEEDED", None)
    assert stock_of(flash) == (100, 1)


# --- a cart line backs one live order --------------------------------------------------------------


def test_one_cart_line_checked_out_10_times_at_once_makes_exactly_one_order(shopper):
    product = make_product(stock=100, price=1_000)
    item = cart_item_set(user_id=shopper.pk, product_id=product.pk, quantity=3).line(product.pk)

    results = race(lambda _: checkout_initiate(user_id=shopper.pk, cart_item_ids=[item.pk]).pk, 10)

    assert [kind for kind, _ in results].count("ok") == 1
    assert codes(results) == ["CART_ITEM_IN_OPEN_ORDER"] * 9
    assert Order.objects.filter(user=shopper).count() == 1
    assert stock_of(product) == (100, 3)


def test_a_cart_line_is_free_again_once_its_order_is_cancelled_or_expired(shopper):
    product = make_product(stock=100, price=1_000)
    item = cart_item_set(user_id=shopper.pk, product_id=product.pk, quantity=1).line(product.pk)
    first = checkout_initiate(user_id=shopper.pk, cart_item_ids=[item.pk])
    with pytest.raises(DomainError) as refused:
        checkout_initiate(user_id=shopper.pk, cart_item_ids=[item.pk])
    assert refused.value.code == "CART_ITEM_IN_OPEN_ORDER" and refused.value.data == {"cartItemIds": [item.pk]}

    order_cancel(order_id=first.pk, user_id=shopper.pk)
    second = checkout_initiate(user_id=shopper.pk, cart_item_ids=[item.pk])
    order_force_expire(order_id=second.pk)
    third = checkout_initiate(user_id=shopper.pk, cart_item_ids=[item.pk])

    live = OrderItem.objects.filter(cart_item_id=item.pk, cart_item_live=True).values_list("order_id", flat=True)
    assert list(live) == [third.pk]
    assert CartItem.objects.filter(pk=item.pk).exists()
    assert stock_of(product) == (100, 1)


def test_expire_unpaid_frees_the_users_of_an_earlier_load_run(shopper):
    from django.core.management import call_command

    product = make_product(stock=10, price=1_000)
    orders = [checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(product.pk, 1)]) for _ in range(3)]
    payment_process(user_id=shopper.pk, order_id=orders[0].pk, amount=orders[0].final_amount)

    call_command("expire_unpaid", "--users", f"{shopper.pk}")

    statuses = sorted(Order.objects.filter(user=shopper).values_list("status", flat=True))
    assert statuses == ["EXPIRED", "EXPIRED", "PAID"]
    assert stock_of(product) == (9, 0)  # the paid unit left the stock; the expired ones hold nothing


def test_expire_unpaid_skips_an_order_the_running_stack_moved_meanwhile(shopper, monkeypatch):
    """The stack keeps running while a bench reseeds: an order listed as unpaid may be paid or
    expired before the command reaches it; that one is skipped and the rest are expired."""
    from io import StringIO

    from django.core.management import call_command

    from orders.management.commands import expire_unpaid

    product = make_product(stock=10, price=1_000)
    first, second, third = (
        checkout_initiate(user_id=shopper.pk, direct_items=[LineRequest(product.pk, 1)]) for _ in range(3)
    )
    real = expire_unpaid.order_force_expire

    def the_stack_pays_the_second_meanwhile(*, order_id):
        if order_id == first.pk:
            payment_process(user_id=shopper.pk, order_id=second.pk, amount=second.final_amount)
        return real(order_id=order_id)

    monkeypatch.setattr(expire_unpaid, "order_force_expire", the_stack_pays_the_second_meanwhile)
    out = StringIO()
    call_command("expire_unpaid", "--users", f"{shopper.pk}", stdout=out)

    assert "expired 2 unpaid order(s)" in out.getvalue()
    statuses = dict(Order.objects.filter(user=shopper).values_list("pk", "status"))
    assert statuses == {first.pk: "EXPIRED", second.pk: "PAID", third.pk: "EXPIRED"}
