import pytest
from django.utils import timezone

from inventory.models import Reservation, Stock
from orders.models import Order, OrderItem
from orders.tests.helpers import balance_of, fund, give_coupon, make_product, stock_of
from shop.models import CartItem, Product, UserCoupon
from shop.tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def checkout(client, **body):
    return client.post("/api/v1/checkout/initiate", body, format="json")


def test_direct_checkout_reserves_stock_and_creates_pending_order(auth_api, user):
    fund(user, 100_000)
    a, b = make_product(stock=5, price=10_000), make_product(stock=5, price=3_000)
    response = checkout(
        auth_api,
        userId=user.pk,
        directOrderItems=[
            {"productId": a.pk, "quantity": 2, "giftWrap": True, "giftMessage": "hi"},
            {"productId": b.pk, "quantity": 1},
        ],
        deliveryAddress="Seoul",
    )
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert data["status"] == "PENDING_PAYMENT"
    assert data["totalAmount"] == 2 * 10_000 + 2_000 + 3_000 == data["finalAmount"]
    assert data["discountAmount"] == 0
    assert 590 <= data["remainingSeconds"] <= 600
    assert [(i["productId"], i["quantity"], i["lineTotal"]) for i in data["items"]] == [
        (a.pk, 2, 22_000),
        (b.pk, 1, 3_000),
    ]
    assert stock_of(a) == (5, 2) and stock_of(b) == (5, 1)
    assert Stock.objects.get(pk=a.pk).version == 1
    assert Reservation.objects.filter(order_id=data["orderId"], status="ACTIVE").count() == 2
    assert balance_of(user) == 100_000  # nothing is debited before payment


def test_checkout_with_coupon_holds_it(auth_api, user):
    fund(user, 100_000)
    product = make_product(price=20_000)
    user_coupon = give_coupon(user, discount_type="PERCENTAGE", discount_value=10, max_discount_amount=1_500)
    data = checkout(
        auth_api, directOrderItems=[{"productId": product.pk, "quantity": 1}], userCouponId=user_coupon.pk
    ).json()["data"]
    assert (data["totalAmount"], data["discountAmount"], data["finalAmount"]) == (20_000, 1_500, 18_500)
    assert UserCoupon.objects.get(pk=user_coupon.pk).held_order_id == data["orderId"]
    again = checkout(auth_api, directOrderItems=[{"productId": product.pk, "quantity": 1}], userCouponId=user_coupon.pk)
    assert again.status_code == 409 and again.json()["errorCode"] == "COUPON_NOT_USABLE"
    assert Order.objects.count() == 1 and stock_of(product) == (10, 1)


def test_checkout_from_cart_lines_prices_them_and_links_each_order_line(auth_api, user):
    fund(user, 100_000)
    product = make_product(price=4_000)
    from shop.models import Cart

    cart = Cart.objects.create(user=user)
    item = CartItem.objects.create(cart=cart, product=product, quantity=3)
    data = checkout(auth_api, cartItemIds=[item.pk]).json()["data"]
    assert data["finalAmount"] == 12_000
    assert OrderItem.objects.get(order_id=data["orderId"]).cart_item_id == item.pk


def test_insufficient_stock_refused_with_details_and_nothing_changes(auth_api, user):
    fund(user, 1_000_000)
    a, b = make_product(stock=5), make_product(stock=1)
    response = checkout(
        auth_api, directOrderItems=[{"productId": a.pk, "quantity": 2}, {"productId": b.pk, "quantity": 2}]
    )
    assert response.status_code == 409
    assert response.json()["errorCode"] == "INSUFFICIENT_STOCK"
    assert response.json()["data"] == {"productId": b.pk, "requested": 2, "available": 1}
    assert stock_of(a) == (5, 0) and stock_of(b) == (1, 0)  # all or nothing
    assert Order.objects.count() == 0 and Reservation.objects.count() == 0


def test_insufficient_balance_refused_early(auth_api, user):
    fund(user, 5_000)
    product = make_product(price=10_000)
    response = checkout(auth_api, directOrderItems=[{"productId": product.pk, "quantity": 1}])
    assert response.status_code == 409
    assert response.json()["errorCode"] == "INSUFFICIENT_BALANCE"
    assert response.json()["data"] == {"required": 10_000, "balance": 5_000}
    assert Order.objects.count() == 0 and stock_of(product) == (10, 0)


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"directOrderItems": []}, 400, "INVALID_ITEMS"),
        ({}, 400, "INVALID_ITEMS"),
        ({"directOrderItems": [{"productId": 1, "quantity": 1}], "cartItemIds": [1]}, 400, "INVALID_ITEMS"),
        ({"directOrderItems": [{"productId": "P", "quantity": 0}]}, 400, "INVALID_INPUT"),
        ({"directOrderItems": [{"productId": "P", "quantity": -1}]}, 400, "INVALID_INPUT"),
        ({"directOrderItems": [{"productId": "P", "quantity": 10**30}]}, 400, "INVALID_INPUT"),
        ({"directOrderItems": [{"productId": "P", "quantity": "many"}]}, 400, "INVALID_INPUT"),
        (
            {"directOrderItems": [{"productId": "P", "quantity": 1}, {"productId": "P", "quantity": 1}]},
            400,
            "INVALID_ITEMS",
        ),
        ({"directOrderItems": [{"productId": 999_999, "quantity": 1}]}, 404, "PRODUCT_NOT_FOUND"),
        ({"directOrderItems": [{"productId": 2**70, "quantity": 1}]}, 400, "INVALID_INPUT"),
        ({"cartItemIds": [424242]}, 404, "CART_ITEM_NOT_FOUND"),
        ({"directOrderItems": "nope"}, 400, "INVALID_INPUT"),
        ({"directOrderItems": [{"productId": "P", "quantity": 1}], "userCouponId": 424242}, 409, "COUPON_NOT_USABLE"),
    ],
)
def test_refusals_change_nothing(auth_api, user, body, status, code):
    fund(user, 1_000_000)
    product = make_product(stock=5)
    if isinstance(body.get("directOrderItems"), list):
        for line in body["directOrderItems"]:
            if line.get("productId") == "P":
                line["productId"] = product.pk
    response = checkout(auth_api, **body)
    assert response.status_code == status, response.json()
    assert response.json()["errorCode"] == code
    assert Order.objects.count() == 0 and Reservation.objects.count() == 0
    assert stock_of(product) == (5, 0)


@pytest.mark.parametrize("flash", [False, True])
def test_an_inactive_product_is_not_found_and_one_without_a_stock_row_has_none(auth_api, user, flash):
    """What the checkout's one read of the products and their stock rows decides, before any lock."""
    fund(user, 1_000_000)
    inactive = make_product(stock=5, status=Product.Status.INACTIVE, is_flash_sale=flash)
    no_row = ProductFactory(is_flash_sale=flash)  # never stocked
    partly = make_product(stock=3, is_flash_sale=flash)

    response = checkout(auth_api, directOrderItems=[{"productId": inactive.pk, "quantity": 1}])
    assert response.status_code == 404 and response.json()["errorCode"] == "PRODUCT_NOT_FOUND"
    assert response.json()["data"] == {"productId": inactive.pk}
    for product, wanted, available in ((no_row, 1, 0), (partly, 4, 3)):
        response = checkout(auth_api, directOrderItems=[{"productId": product.pk, "quantity": wanted}])
        assert response.status_code == 409 and response.json()["errorCode"] == "INSUFFICIENT_STOCK"
        assert response.json()["data"] == {"productId": product.pk, "requested": wanted, "available": available}
    assert Order.objects.count() == 0 and Reservation.objects.count() == 0
    assert stock_of(inactive) == (5, 0) and stock_of(partly) == (3, 0)

    response = checkout(auth_api, directOrderItems=[{"productId": partly.pk, "quantity": 2}])  # flash limit: 2
    assert response.status_code == 200, response.json()
    assert stock_of(partly) == (3, 2)


def test_checkout_for_another_user_is_403(auth_api, other_user):
    product = make_product()
    response = checkout(auth_api, userId=other_user.pk, directOrderItems=[{"productId": product.pk, "quantity": 1}])
    assert response.status_code == 403
    assert Order.objects.count() == 0


def test_retry_with_same_idempotency_key_returns_the_same_order(auth_api, user):
    fund(user, 100_000)
    product = make_product()
    body = {"directOrderItems": [{"productId": product.pk, "quantity": 1}]}
    first = auth_api.post("/api/v1/checkout/initiate", body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    second = auth_api.post("/api/v1/checkout/initiate", body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.json() == second.json()
    assert Order.objects.count() == 1 and stock_of(product) == (10, 1)


def test_legacy_post_orders_reserves_stock(auth_api, user):
    fund(user, 100_000)
    product = make_product(stock=3)
    response = auth_api.post(
        "/api/v1/orders",
        {"userId": user.pk, "items": [{"productId": product.pk, "quantity": 2}], "deliveryAddress": "Busan"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["data"]["status"] == "PENDING_PAYMENT"
    assert stock_of(product) == (3, 2)


def test_order_detail_and_list_are_the_callers(auth_api, user, other_user):
    fund(user, 100_000)
    product = make_product()
    ids = [
        checkout(auth_api, directOrderItems=[{"productId": product.pk, "quantity": 1}]).json()["data"]["orderId"]
        for _ in range(3)
    ]
    page = auth_api.get("/api/v1/orders?size=2").json()["data"]
    assert [o["orderId"] for o in page["contents"]] == [ids[2], ids[1]] and page["lastId"] == ids[1]
    rest = auth_api.get(f"/api/v1/orders?size=2&lastId={page['lastId']}").json()["data"]
    assert [o["orderId"] for o in rest["contents"]] == [ids[0]] and rest["lastId"] is None
    from conftest import client_for

    other = client_for(other_user)
    assert other.get(f"/api/v1/orders/{ids[0]}").status_code == 404
    assert other.get(f"/api/v1/orders?userId={user.pk}").status_code == 403
    assert auth_api.get(f"/api/v1/orders/{ids[0]}").json()["data"]["expiresAt"] > timezone.now().isoformat()[:10]
