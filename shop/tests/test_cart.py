"""Cart: replace-on-set lines, the 50-line cap, current prices, and the checkout helpers."""

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import client_for
from shop.api.cart import CartOutput
from shop.errors import CartItemNotFound
from shop.models import Cart, CartItem, Product
from shop.pricing import GIFT_WRAP_PRICE, MAX_LINES
from shop.selectors.cart import cart_get, cart_lines_for_checkout
from shop.services.cart import cart_item_set, cart_remove_lines, carts_remove_lines
from shop.tests.factories import ProductFactory, UserFactory

CART = "/api/v1/cart"
ITEMS = "/api/v1/cart/items"


def set_line(client, product_id, quantity=1, **extra):
    return client.post(ITEMS, {"productId": product_id, "quantity": quantity, **extra}, format="json")


def lines(user) -> list[tuple[int, int, bool, str]]:
    return list(
        CartItem.objects.filter(cart__user=user)
        .order_by("product_id")
        .values_list("product_id", "quantity", "gift_wrap", "gift_message")
    )


@pytest.mark.django_db
class TestApi:
    def test_empty_cart_is_an_empty_list_not_null(self, auth_api, user):
        response = auth_api.get(CART)
        assert response.status_code == 200
        assert response.json()["data"] == {
            "id": None,
            "userId": user.pk,
            "items": [],
            "totalItemCount": 0,
            "totalQuantity": 0,
            "totalPrice": 0,
        }
        assert not Cart.objects.exists()  # a read never writes

    def test_setting_lines_answers_the_cart_with_line_and_cart_totals(self, auth_api, user):
        a, b = ProductFactory(price=10_000, name="Mug"), ProductFactory(price=3_500)
        set_line(auth_api, a.pk, 2, giftWrap=True, giftMessage="Happy birthday")
        response = set_line(auth_api, b.pk, 3)
        assert response.status_code == 200
        cart = response.json()["data"]
        assert cart["id"] == Cart.objects.get(user=user).pk and cart["userId"] == user.pk
        item_a = CartItem.objects.get(product=a)
        assert cart["items"][0] == {
            "id": item_a.pk,
            "productId": a.pk,
            "productName": "Mug",
            "quantity": 2,
            "unitPrice": 10_000,
            "giftWrap": True,
            "giftMessage": "Happy birthday",
            "lineTotal": 22_000,  # wrap is per line, not per unit
        }
        assert cart["items"][1]["lineTotal"] == 10_500
        assert (cart["totalItemCount"], cart["totalQuantity"], cart["totalPrice"]) == (2, 5, 32_500)

    def test_setting_a_line_again_replaces_quantity_and_gift_options(self, auth_api, user):
        product = ProductFactory()
        set_line(auth_api, product.pk, 5, giftWrap=True, giftMessage="hi")
        item_id = CartItem.objects.get().pk
        set_line(auth_api, product.pk, 2)
        assert lines(user) == [(product.pk, 2, False, "")]
        assert CartItem.objects.get().pk == item_id  # the same line, not a new one

    def test_totals_follow_current_prices(self, auth_api):
        product = ProductFactory(price=1_000)
        set_line(auth_api, product.pk, 3)
        Product.objects.filter(pk=product.pk).update(price=2_000)
        assert auth_api.get(CART).json()["data"]["totalPrice"] == 6_000

    def test_reading_the_cart_takes_one_query_whatever_its_lines(self, auth_api, django_assert_num_queries):
        for product in ProductFactory.create_batch(5):
            set_line(auth_api, product.pk)
        with django_assert_num_queries(1):  # the lines with their products and cart id (stateless JWT)
            response = auth_api.get(CART)
        assert len(response.json()["data"]["items"]) == 5

    def test_the_written_out_answer_is_what_the_documented_serializer_gives(self, auth_api, user):
        """`cart_answer` builds the answer by hand for speed; `CartOutput` documents it (the OpenAPI
        schema). The two must agree on every field, in order, for every kind of line."""
        set_line(auth_api, ProductFactory(price=1_500).pk, 3)
        set_line(auth_api, ProductFactory(price=700).pk, 1, giftWrap=True, giftMessage="for you")
        view = cart_get(user_id=user.pk)
        documented = json.loads(json.dumps(CartOutput(view).data))
        answered = auth_api.get(CART).json()["data"]
        # as text: field order, and `false` is not `0` (a raw row carries MariaDB's 0/1 for a boolean)
        assert json.dumps(answered) == json.dumps(documented)
        assert answered["items"][1]["giftWrap"] is True and answered["items"][0]["giftWrap"] is False
        assert answered["totalPrice"] == 1_500 * 3 + 700 + GIFT_WRAP_PRICE

    def test_an_emptied_cart_still_answers_its_id(self, auth_api, django_assert_num_queries):
        cart_id = set_line(auth_api, ProductFactory().pk).json()["data"]["id"]
        auth_api.delete(CART)
        with django_assert_num_queries(2):  # no lines: the cart id alone
            response = auth_api.get(CART)
        assert response.json()["data"]["id"] == cart_id and response.json()["data"]["items"] == []

    def test_fifty_line_cap_is_409_cart_full(self, auth_api, user):
        products = ProductFactory.create_batch(MAX_LINES + 1)
        for product in products[:MAX_LINES]:
            assert set_line(auth_api, product.pk).status_code == 200
        refused = set_line(auth_api, products[-1].pk)
        assert refused.status_code == 409
        assert refused.json()["errorCode"] == "CART_FULL" and refused.json()["data"] == {"maxLines": 50}
        assert CartItem.objects.count() == MAX_LINES
        # a full cart can still change its existing lines
        assert set_line(auth_api, products[0].pk, 7).status_code == 200
        assert CartItem.objects.get(product=products[0]).quantity == 7

    @pytest.mark.parametrize(
        "body",
        [
            {"quantity": 0},
            {"quantity": 100},
            {"quantity": -1},
            {"quantity": "2"},
            {"quantity": 2.0},
            {"quantity": None},
            {"giftWrap": "true"},
            {"giftWrap": 1},
            {"giftMessage": "x" * 501},
            {"productId": "1"},
            {"productId": 0},
            {"productId": None},
        ],
    )
    def test_bad_line_is_400_and_changes_nothing(self, auth_api, user, body):
        product = ProductFactory()
        set_line(auth_api, product.pk, 4)
        payload = {"productId": product.pk, "quantity": 1, **body}
        response = auth_api.post(ITEMS, payload, format="json")
        assert response.status_code == 400 and response.json()["errorCode"] == "INVALID_INPUT"
        assert lines(user) == [(product.pk, 4, False, "")]

    def test_unknown_or_inactive_product_is_404(self, auth_api, user):
        inactive = ProductFactory(status=Product.Status.INACTIVE)
        for product_id in (inactive.pk, 987_654):
            refused = set_line(auth_api, product_id)
            assert refused.status_code == 404 and refused.json()["errorCode"] == "PRODUCT_NOT_FOUND"
        assert not CartItem.objects.exists()

    def test_put_quantity_and_zero_removes(self, auth_api, user):
        product = ProductFactory(price=1_000)
        set_line(auth_api, product.pk, 1)
        item = CartItem.objects.get()
        response = auth_api.put(f"{ITEMS}/{item.pk}?quantity=9")
        assert response.status_code == 200 and response.json()["data"]["totalPrice"] == 9_000
        response = auth_api.put(f"{ITEMS}/{item.pk}?quantity=0")
        assert response.status_code == 200 and response.json()["data"]["items"] == []
        assert not CartItem.objects.exists()

    @pytest.mark.parametrize(
        "query", ["", "?quantity=", "?quantity=100", "?quantity=-1", "?quantity=1.5", "?quantity=abc"]
    )
    def test_put_bad_quantity_is_400(self, auth_api, user, query):
        set_line(auth_api, ProductFactory().pk, 3)
        item = CartItem.objects.get()
        response = auth_api.put(f"{ITEMS}/{item.pk}{query}")
        assert response.status_code == 400 and response.json()["errorCode"] == "INVALID_PARAMETER"
        assert CartItem.objects.get().quantity == 3

    def test_other_users_line_is_404_and_untouched(self, auth_api, other_user):
        set_line(client_for(other_user), ProductFactory().pk, 3)
        theirs = CartItem.objects.get()
        for response in (
            auth_api.put(f"{ITEMS}/{theirs.pk}?quantity=5"),
            auth_api.put(f"{ITEMS}/{theirs.pk}?quantity=0"),
            auth_api.delete(f"{ITEMS}/{theirs.pk}"),
            auth_api.delete(f"{ITEMS}/999999"),
            auth_api.delete(f"{ITEMS}/99999999999999999999999"),
        ):
            assert response.status_code == 404 and response.json()["errorCode"] == "CART_ITEM_NOT_FOUND"
        assert CartItem.objects.get().quantity == 3

    def test_deleting_a_line_removes_only_it_and_clearing_empties_the_cart(self, auth_api, user):
        a, b = ProductFactory.create_batch(2)
        set_line(auth_api, a.pk)
        set_line(auth_api, b.pk)
        response = auth_api.delete(f"{ITEMS}/{CartItem.objects.get(product=a).pk}")
        assert [i["productId"] for i in response.json()["data"]["items"]] == [b.pk]
        response = auth_api.delete(CART)
        assert response.status_code == 200 and response.json()["data"]["items"] == []
        assert not CartItem.objects.exists()
        assert client_for(UserFactory()).delete(CART).json()["data"]["items"] == []  # no cart at all: fine

    def test_another_users_user_id_is_403_and_a_malformed_one_400(self, auth_api, user, other_user):
        product = ProductFactory()
        assert auth_api.get(f"{CART}?userId={user.pk}").status_code == 200
        for response in (
            auth_api.get(f"{CART}?userId={other_user.pk}"),
            auth_api.post(f"{ITEMS}?userId={other_user.pk}", {"productId": product.pk, "quantity": 1}, format="json"),
            auth_api.delete(f"{CART}?userId={other_user.pk}"),
        ):
            assert response.status_code == 403
        assert auth_api.get(f"{CART}?userId=abc").status_code == 400
        assert not CartItem.objects.exists()

    def test_requires_authentication(self, api):
        assert api.get(CART).status_code == 401


@pytest.mark.django_db
class TestCheckoutHelpers:
    def test_lines_for_checkout_are_the_callers_own_and_unknown_ones_are_404(self, user, other_user):
        a, b = ProductFactory(price=1_000), ProductFactory(price=2_000)
        one = cart_item_set(user_id=user.pk, product_id=a.pk, quantity=2).line(a.pk)
        two = cart_item_set(user_id=user.pk, product_id=b.pk, quantity=1, gift_wrap=True).line(b.pk)
        theirs = cart_item_set(user_id=other_user.pk, product_id=a.pk, quantity=1).line(a.pk)
        items = cart_lines_for_checkout(user_id=user.pk, cart_item_ids=[two.pk, one.pk, one.pk])
        assert [(i.pk, i.product.price, i.quantity) for i in items] == [(one.pk, 1_000, 2), (two.pk, 2_000, 1)]
        with pytest.raises(CartItemNotFound) as refused:
            cart_lines_for_checkout(user_id=user.pk, cart_item_ids=[one.pk, theirs.pk, 999_999])
        assert refused.value.status == 404 and refused.value.data == {"cartItemIds": [theirs.pk, 999_999]}

    def test_remove_lines_after_payment(self, user, other_user):
        a, b, c = ProductFactory.create_batch(3)
        for product in (a, b, c):
            cart_item_set(user_id=user.pk, product_id=product.pk, quantity=1)
        cart_item_set(user_id=other_user.pk, product_id=a.pk, quantity=1)
        assert cart_remove_lines(user_id=user.pk, product_ids=[a.pk, c.pk, 999_999]) == 2
        assert [row[0] for row in lines(user)] == [b.pk]
        assert len(lines(other_user)) == 1
        assert cart_remove_lines(user_id=user.pk, product_ids=[]) == 0
        assert cart_remove_lines(user_id=UserFactory().pk, product_ids=[a.pk]) == 0

    def test_remove_lines_of_several_users_in_one_statement(self, user, other_user):
        """The outbox consumer's form: each user loses only the products listed for them."""
        a, b, c = ProductFactory.create_batch(3)
        for owner in (user, other_user):
            for product in (a, b, c):
                cart_item_set(user_id=owner.pk, product_id=product.pk, quantity=1)
        with CaptureQueriesContext(connection) as sql:
            removed = carts_remove_lines(lines={user.pk: [a.pk, b.pk, a.pk], other_user.pk: [c.pk], 999_999: [a.pk]})
        assert removed == 3 and len(sql.captured_queries) == 1
        assert [row[0] for row in lines(user)] == [c.pk]
        assert sorted(row[0] for row in lines(other_user)) == sorted([a.pk, b.pk])
        assert carts_remove_lines(lines={user.pk: [], other_user.pk: ()}) == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_sets_never_pass_the_line_cap():
    """60 different products added at once by one user: the cart row lock keeps exactly 50."""
    user = UserFactory()
    products = ProductFactory.create_batch(60)
    barrier = threading.Barrier(20)

    def add(product_id: int) -> int:
        try:
            if product_id in first_wave:
                barrier.wait(timeout=30)
            return set_line(client_for(user), product_id).status_code
        finally:
            connection.close()

    first_wave = {p.pk for p in products[:20]}
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = Counter(pool.map(add, [p.pk for p in products]))
    assert statuses == Counter({200: 50, 409: 10})
    assert CartItem.objects.filter(cart__user=user).count() == 50
    assert Cart.objects.filter(user=user).count() == 1


@pytest.mark.django_db
def test_cart_admin_lists_carts_and_shows_their_lines(operator, user):
    cart_item_set(user_id=user.pk, product_id=ProductFactory(name="Teapot").pk, quantity=2)
    assert operator.get("/admin/shop/cart/").status_code == 200
    page = operator.get(f"/admin/shop/cart/{Cart.objects.get().pk}/change/")
    assert page.status_code == 200 and b"Teapot" in page.content
