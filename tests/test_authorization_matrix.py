"""Users are kept apart: every user-scoped endpoint x another user's token, and x no token.

The endpoints are enumerated from the URL resolver, not listed by hand: an API view that is not
public (AllowAny) must appear in `ATTACKS` (how to aim it at the victim) or in `SELF_ONLY` (it has no
way to name another user), and any other route must be in `NON_API_ROUTES`; a new endpoint that is
in none of them fails `test_every_route_is_classified` until someone decides how it is attacked.

For each attack the caller is the attacker, with a valid token of their own, naming the victim's
resources (ids in the path, `userId` in the query or body). The answer must be 403 or 404 in the
error envelope, must not contain any of the victim's data, and nothing of the victim may change.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.permissions import AllowAny
from rest_framework.test import APIClient
from rest_framework.views import APIView

from common.sse.storage import UserChannelManager, user_channel
from common.sse.views import sse_token_issue
from conftest import bearer, client_for
from orders.models import Order, QueueRequest
from orders.services import LineRequest, checkout_initiate
from orders.tests.helpers import fund, give_coupon, make_product
from payments.models import Payment
from payments.services import payment_process
from shop.models import CartItem, PointHistory, PointWallet, UserCoupon
from shop.services.cart import cart_item_set
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# Routes that are not DRF API views, and what guards them (tested below or elsewhere).
NON_API_ROUTES = {
    "sse-subscribe": "own stream only (test_sse_channel_of_another_user_is_refused)",
    "schema": "public OpenAPI document",
    "docs": "public interactive docs",
    "prometheus-django-metrics": "metrics, no user data; loopback or token only (common/tests/test_ops_access.py)",
    "sse-flash-stock": "public stock figures of the flash products, no user data",
    "sale-dashboard": "admin_view: staff only (dashboard/tests/test_dashboard.py)",
    "sale-dashboard-data": "admin_view: staff only",
    "sale-dashboard-control": "admin_view: staff with the change permission, CSRF",
    "demo-flash-sale": "static demo page, no user data (its API calls are the API's)",
    None: "healthz / readyz: no user data",
}
# Authenticated API views that act only on the caller: there is nothing of another user to name.
SELF_ONLY = {("user-me", "get"), ("sse-token", "post")}


@dataclass
class Victim:
    user: Any
    order: Order  # unpaid
    paid_order: Order
    payment: Payment
    cart_item: CartItem
    user_coupon: UserCoupon
    queue_request: QueueRequest
    product: Any

    def secrets(self) -> list[str]:
        """Strings that must never appear in an answer to somebody else."""
        return [
            self.user.username,
            self.user.email,
            self.order.order_number,
            self.paid_order.order_number,
            self.payment.payment_number,
            str(self.queue_request.request_id),
        ]


@dataclass
class Attack:
    """One request aimed at the victim: path kwargs, query and JSON body built from the victim."""

    kwargs: Callable[[Victim], dict] = lambda v: {}
    query: Callable[[Victim], dict] = lambda v: {}
    body: Callable[[Victim], dict] | None = None
    expect: tuple[int, ...] = (403, 404)
    label: str = ""


def _lines(v: Victim) -> list[dict]:
    return [{"productId": v.product.pk, "quantity": 1}]


VICTIM_USER = lambda v: {"user_id": v.user.pk}  # noqa: E731
VICTIM_QUERY = lambda v: {"userId": v.user.pk}  # noqa: E731

# (url name, method) -> the ways to aim it at the victim. Several entries = several variants.
ATTACKS: dict[tuple[str, str], list[Attack]] = {
    ("cart", "get"): [Attack(query=VICTIM_QUERY)],
    ("cart", "delete"): [Attack(query=VICTIM_QUERY)],
    ("cart-items", "post"): [
        Attack(query=VICTIM_QUERY, body=lambda v: {"productId": v.product.pk, "quantity": 3}),
    ],
    ("cart-item", "put"): [
        Attack(kwargs=lambda v: {"item_id": v.cart_item.pk}, query=lambda v: {"quantity": 7}, label="own cart"),
        Attack(kwargs=lambda v: {"item_id": v.cart_item.pk}, query=lambda v: {"quantity": 7, "userId": v.user.pk}),
    ],
    ("cart-item", "delete"): [
        Attack(kwargs=lambda v: {"item_id": v.cart_item.pk}, label="own cart"),
        Attack(kwargs=lambda v: {"item_id": v.cart_item.pk}, query=VICTIM_QUERY),
    ],
    ("points-balance", "get"): [Attack(kwargs=VICTIM_USER)],
    ("points-charge", "post"): [Attack(kwargs=VICTIM_USER, body=lambda v: {"amount": 1000})],
    ("points-histories", "get"): [Attack(kwargs=VICTIM_USER)],
    ("coupons-issue", "post"): [Attack(query=VICTIM_QUERY, body=lambda v: {"couponId": v.user_coupon.coupon_id})],
    ("coupons-of-user", "get"): [Attack(kwargs=VICTIM_USER)],
    ("coupons-of-user-usable", "get"): [Attack(kwargs=VICTIM_USER)],
    ("checkout-initiate", "post"): [
        Attack(body=lambda v: {"userId": v.user.pk, "directOrderItems": _lines(v)}),
        Attack(body=lambda v: {"cartItemIds": [v.cart_item.pk]}, expect=(400, 403, 404), label="victim's cart line"),
        Attack(
            body=lambda v: {"directOrderItems": _lines(v), "userCouponId": v.user_coupon.pk},
            expect=(403, 404, 409),
            label="victim's coupon",
        ),
    ],
    ("checkout-cancel", "post"): [
        Attack(kwargs=lambda v: {"order_id": v.order.pk}, body=lambda v: {}),
        Attack(kwargs=lambda v: {"order_id": v.paid_order.pk}, body=lambda v: {"userId": v.user.pk}),
    ],
    ("orders", "get"): [Attack(query=VICTIM_QUERY)],
    ("orders", "post"): [Attack(body=lambda v: {"userId": v.user.pk, "items": _lines(v)})],
    ("order-detail", "get"): [
        Attack(kwargs=lambda v: {"order_id": v.order.pk}),
        Attack(kwargs=lambda v: {"order_id": v.paid_order.pk}),
    ],
    ("order-cancel", "post"): [
        Attack(kwargs=lambda v: {"order_id": v.order.pk}, body=lambda v: {}),
        Attack(kwargs=lambda v: {"order_id": v.paid_order.pk}, body=lambda v: {"userId": v.user.pk}),
    ],
    ("checkout-queue", "post"): [Attack(body=lambda v: {"userId": v.user.pk, "productId": v.product.pk})],
    ("checkout-queue-status", "get"): [Attack(kwargs=lambda v: {"request_id": v.queue_request.request_id})],
    ("checkout", "post"): [
        Attack(body=lambda v: {"userId": v.user.pk, "items": _lines(v)}),
        Attack(body=lambda v: {"cartItemIds": [v.cart_item.pk]}, expect=(400, 403, 404), label="victim's cart line"),
        Attack(
            body=lambda v: {"items": _lines(v), "userCouponId": v.user_coupon.pk},
            expect=(403, 404, 409),
            label="victim's coupon",
        ),
    ],
    ("checkout-status", "get"): [Attack(kwargs=lambda v: {"request_id": v.queue_request.request_id})],
    ("payment-process", "post"): [
        Attack(body=lambda v: {"orderId": v.order.pk, "amount": v.order.final_amount}),
        Attack(body=lambda v: {"orderId": v.order.pk, "amount": v.order.final_amount, "userId": v.user.pk}),
    ],
    ("payment-detail", "get"): [Attack(kwargs=lambda v: {"payment_id": v.payment.pk})],
    ("payments-of-user", "get"): [Attack(kwargs=VICTIM_USER)],
}

# Path parameters a no-token request may fill with anything (authentication comes first).
ANY_KWARGS = {"user_id": 1, "item_id": 1, "order_id": 1, "payment_id": 1, "request_id": uuid.uuid4()}


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    view: type[APIView]
    params: tuple[str, ...] = field(default=())

    @property
    def public(self) -> bool:
        permissions = self.view.permission_classes
        return not permissions or any(issubclass(p, AllowAny) for p in permissions)

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.name}"


def _walk(patterns, prefix: str = "") -> Iterator[tuple[URLPattern, str]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            if entry.app_name == "admin":
                continue  # session-authenticated, staff only: test_admin_needs_staff
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        else:
            yield entry, prefix + str(entry.pattern)


def api_endpoints() -> list[Endpoint]:
    found = []
    for pattern, _ in _walk(get_resolver().url_patterns):
        view = getattr(pattern.callback, "cls", None)
        if view is None or not issubclass(view, APIView):
            continue
        params = tuple(pattern.pattern.converters) or tuple(pattern.pattern.regex.groupindex)
        for method in view.http_method_names:
            if method not in ("options", "head") and hasattr(view, method):
                found.append(Endpoint(pattern.name, method, view, params))
    return found


def other_routes() -> set[str | None]:
    return {
        pattern.name
        for pattern, _ in _walk(get_resolver().url_patterns)
        if not issubclass(getattr(pattern.callback, "cls", type), APIView)
    }


ENDPOINTS = api_endpoints()
SCOPED = [e for e in ENDPOINTS if not e.public]


def test_every_route_is_classified():
    scoped = {(e.name, e.method) for e in SCOPED}
    assert scoped - set(ATTACKS) - SELF_ONLY == set(), "a new user-scoped endpoint: add it to ATTACKS or SELF_ONLY"
    assert set(ATTACKS) - scoped == set(), "ATTACKS names an endpoint that no longer exists (or became public)"
    assert other_routes() - set(NON_API_ROUTES) == set(), "a new non-API route: say what guards it"
    assert len(SCOPED) >= 24  # the size of the matrix, so a broken enumeration cannot pass by finding nothing


@pytest.fixture
def victim(db, settings) -> Victim:
    settings.FLASH_SALE_MAX_PER_USER = 10  # the victim holds several units of one flash-sale product
    user = UserFactory()
    fund(user, 1_000_000)
    product = make_product(stock=100, price=10_000, is_flash_sale=True)
    user_coupon = give_coupon(user, discount_value=1_000)
    paid = checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 1)])
    payment = payment_process(user_id=user.pk, order_id=paid.pk, amount=paid.final_amount)
    order = checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 2)])
    item = cart_item_set(user_id=user.pk, product_id=product.pk, quantity=4).line(product.pk)
    queued = QueueRequest.objects.create(
        request_id=uuid.uuid4(),
        user=user,
        product=make_product(stock=5, is_flash_sale=True),
        quantity=1,
        queue_position=1,
    )
    return Victim(user, order, paid, payment, item, user_coupon, queued, product)


def snapshot(v: Victim) -> dict:
    """Everything of the victim an attack could change."""
    return {
        "wallet": list(PointWallet.objects.filter(user=v.user).values_list("balance", flat=True)),
        "ledger": list(PointHistory.objects.filter(user=v.user).values_list("pk", "amount")),
        "cart": list(CartItem.objects.filter(cart__user=v.user).values_list("pk", "product_id", "quantity")),
        "orders": list(Order.objects.filter(user=v.user).values_list("pk", "status", "final_amount")),
        "payments": list(Payment.objects.filter(user=v.user).values_list("pk", "status")),
        "coupons": list(UserCoupon.objects.filter(user=v.user).values_list("pk", "status", "held_order_id")),
        "queue": list(QueueRequest.objects.filter(user=v.user).values_list("pk", "status")),
    }


def send(client: APIClient, endpoint: Endpoint, attack: Attack, v: Victim):
    url = reverse(endpoint.name, kwargs=attack.kwargs(v))
    query = attack.query(v)
    if query:
        url += "?" + "&".join(f"{k}={val}" for k, val in query.items())
    call = getattr(client, endpoint.method)
    if attack.body is not None:
        return call(url, attack.body(v), format="json")
    return call(url)


@pytest.mark.parametrize("endpoint", [e for e in SCOPED if (e.name, e.method) in ATTACKS], ids=str)
def test_another_users_token_is_refused_and_learns_nothing(endpoint, victim):
    attacker = UserFactory()
    fund(attacker, 1_000_000)
    client = client_for(attacker)
    before = snapshot(victim)
    for attack in ATTACKS[(endpoint.name, endpoint.method)]:
        response = send(client, endpoint, attack, victim)
        where = f"{endpoint} {attack.label or attack.kwargs(victim) or attack.query(victim)}"
        assert response.status_code in attack.expect, (where, response.status_code, response.content[:300])
        body = response.json()
        assert body["success"] is False, where
        text = response.content.decode()
        leaked = [s for s in victim.secrets() if s in text]
        assert not leaked, (where, leaked)
    assert snapshot(victim) == before, f"{endpoint} changed the victim's data"


@pytest.mark.parametrize("endpoint", SCOPED, ids=str)
def test_no_token_is_401(endpoint, victim):
    kwargs = {name: ANY_KWARGS[name] for name in endpoint.params}
    url = reverse(endpoint.name, kwargs=kwargs)
    for credentials in ({}, {"HTTP_AUTHORIZATION": "Bearer not-a-token"}, {"HTTP_AUTHORIZATION": "Basic eDp5"}):
        client = APIClient()
        client.credentials(**credentials)
        response = getattr(client, endpoint.method)(url, {}, format="json")
        assert response.status_code == 401, (str(endpoint), credentials, response.content[:200])
        assert response.json()["errorCode"] == "UNAUTHORIZED"
        assert "WWW-Authenticate" in response


@pytest.mark.parametrize("endpoint", [e for e in SCOPED if (e.name, e.method) in SELF_ONLY], ids=str)
def test_self_only_endpoints_answer_about_the_caller(endpoint, victim):
    attacker = UserFactory()
    response = getattr(client_for(attacker), endpoint.method)(reverse(endpoint.name))
    assert response.status_code == 200
    text = response.content.decode()
    assert not [s for s in victim.secrets() if s in text]
    assert str(attacker.pk) in text


def test_sse_channel_of_another_user_is_refused(victim):
    attacker = UserFactory()
    url = f"/api/sse/subscribe/{victim.user.pk}"
    with_bearer = Client().get(url, HTTP_AUTHORIZATION=bearer(attacker))
    with_token = Client().get(url, {"token": sse_token_issue(user_id=attacker.pk)})
    for response in (with_bearer, with_token):
        assert response.status_code == 403
        assert response.json()["errorCode"] == "FORBIDDEN"
    assert Client().get(url).status_code == 401
    assert Client().get(url, {"token": "forged:token"}).status_code == 401
    # The owner passes authentication (421: streams are served by the ASGI process, not this WSGI one).
    assert Client().get(url, HTTP_AUTHORIZATION=bearer(victim.user)).status_code == 421
    # And the channel manager refuses the channel even if a view forgot to check.
    manager = UserChannelManager()
    assert not manager.can_read_channel(attacker, user_channel(victim.user.pk))
    assert manager.can_read_channel(victim.user, user_channel(victim.user.pk))


def test_admin_needs_staff(victim):
    urls = ["/admin/"] + [
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist") for model in admin.site._registry
    ]
    anonymous, shopper = Client(), Client()
    shopper.force_login(UserFactory())
    bearer_only = Client(HTTP_AUTHORIZATION=bearer(UserFactory(is_staff=True, is_superuser=True)))
    for url in urls:
        for client in (anonymous, shopper, bearer_only):
            response = client.get(url)
            assert response.status_code == 302 and "/admin/login/" in response["Location"], (url, response.status_code)
    staff = Client()
    staff.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert staff.get("/admin/").status_code == 200
    page = staff.get(reverse("admin:orders_order_changelist"))
    assert page.status_code == 200 and victim.order.order_number in page.content.decode()


def test_an_expired_token_is_401(victim):
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken.for_user(victim.user)
    token.set_exp(from_time=timezone.now() - timezone.timedelta(hours=2))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get(f"/api/v1/points/{victim.user.pk}").status_code == 401
