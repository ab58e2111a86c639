"""Cart writes: one cart per user, one line per product (reads and prices: shop/selectors/cart.py).

Writes lock the user's cart row first (created on the first write, never on a read), so the line
cap (`shop.pricing.MAX_LINES`) and the one-line-per-product rule hold under concurrent requests of
one user.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet

from common.bulk_sql import fetch_one, placeholders
from common.db import use_case
from shop.errors import CartFull, CartItemNotFound, ProductNotFound, PurchaseLimitExceeded
from shop.models import Cart, CartItem, Product
from shop.pricing import MAX_LINES
from shop.selectors.cart import CartLine, CartView, cart_lines


@use_case
def cart_item_set(
    *, user_id: int, product_id: int, quantity: int, gift_wrap: bool = False, gift_message: str = ""
) -> CartView:
    """Set the product's line: replaces its quantity and gift options (409 CART_FULL for a 51st line;
    409 PURCHASE_LIMIT_EXCEEDED for more units of a flash-sale product than one customer may buy).
    Returns the cart as it is after the write, read under the cart's lock (no read after the write)."""
    product = _active_product(product_id)
    if product is None:
        raise ProductNotFound(data={"productId": product_id})
    name, price, is_flash_sale = product
    if is_flash_sale:
        _check_flash_quantity(product_id, quantity)
    cart_id = _lock_or_create_cart(user_id)
    view = CartView(id=cart_id, user_id=user_id, items=cart_lines(cart_id=cart_id))
    values = {"quantity": quantity, "gift_wrap": gift_wrap, "gift_message": gift_message}
    if (line := view.find(product_id)) is not None:
        CartItem.objects.filter(pk=line.id).update(**values)
        line.quantity, line.gift_wrap, line.gift_message = quantity, gift_wrap, gift_message
    elif view.total_item_count >= MAX_LINES:
        raise CartFull(data={"maxLines": MAX_LINES})
    else:
        item = CartItem.objects.create(cart_id=cart_id, product_id=product_id, **values)
        view.items.append(CartLine(item.pk, product_id, name, price, quantity, gift_wrap, gift_message))
    return view


@use_case
def cart_item_update_quantity(*, user_id: int, item_id: int, quantity: int) -> None:
    """Set a line's quantity; 0 removes the line. 404 CART_ITEM_NOT_FOUND if it is not the user's."""
    lines = _own_line(user_id, item_id)
    if quantity:
        flash_product = lines.filter(product__is_flash_sale=True).values_list("product_id", flat=True).first()
        if flash_product is not None:
            _check_flash_quantity(flash_product, quantity)
    changed = lines.delete()[0] if quantity == 0 else lines.update(quantity=quantity)
    if not changed:
        raise CartItemNotFound(data={"cartItemIds": [item_id]})


@use_case
def cart_item_remove(*, user_id: int, item_id: int) -> None:
    if not _own_line(user_id, item_id).delete()[0]:
        raise CartItemNotFound(data={"cartItemIds": [item_id]})


@use_case
def cart_clear(*, user_id: int) -> int:
    """Remove every line; returns how many there were."""
    cart_id = _lock_cart(user_id)
    return CartItem.objects.filter(cart_id=cart_id).delete()[0] if cart_id is not None else 0


@use_case
def cart_remove_lines(*, user_id: int, product_ids: list[int]) -> int:
    """After payment: drop the user's lines for these products (the checked-out ones). Returns the count."""
    return carts_remove_lines(lines={user_id: product_ids})


def carts_remove_lines(*, lines: Mapping[int, Iterable[int]]) -> int:
    """`cart_remove_lines` for several users (user id -> product ids) in one statement, inside the
    caller's transaction (the outbox consumer's chunks). Returns the count. Like `cart_item_remove`,
    it takes no cart lock: removing lines cannot break the line cap or the one-line-per-product rule
    that the lock protects."""
    conditions, params = [], []
    for user_id, product_ids in sorted(lines.items()):
        ids = sorted(set(product_ids))
        if ids:
            conditions.append(f"(c.`user_id` = %s AND i.`product_id` IN ({placeholders(ids)}))")
            params += [user_id, *ids]
    if not conditions:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(_REMOVE_LINES_SQL.format(conditions=" OR ".join(conditions)), params)
        return cursor.rowcount


# Written out: through the ORM (a Q per user, then QuerySet.delete) compiling it was a sixth of the outbox
# consumer's CPU per PaymentCompleted (py-spy, docs/REPORT.md). Nothing references a cart line, so the
# ORM's delete was this one statement too.
_REMOVE_LINES_SQL = (
    "DELETE i FROM `shop_cartitem` i INNER JOIN `shop_cart` c ON c.`id` = i.`cart_id` WHERE {conditions}"
)


def _check_flash_quantity(product_id: int, quantity: int) -> None:
    """A cart line of a flash-sale product holds at most what one customer may buy (the checkout
    also counts what they already hold or bought: orders/limits.py)."""
    if quantity > settings.FLASH_SALE_MAX_PER_USER:
        raise PurchaseLimitExceeded(
            data={"productId": product_id, "limit": settings.FLASH_SALE_MAX_PER_USER, "requested": quantity}
        )


# The cart add's reads, written out: through the ORM, compiling each cost 0.2-0.25 ms of CPU, the query
# itself 0.04 ms (docs/REPORT.md).
_ACTIVE_PRODUCT_SQL = "SELECT name, price, is_flash_sale FROM shop_product WHERE id = %s AND status = %s"
_LOCK_CART_SQL = "SELECT id FROM shop_cart WHERE user_id = %s FOR UPDATE"


def _active_product(product_id: int) -> tuple[str, int, bool] | None:
    """(name, price, is flash sale) of an active product; None if it is unknown or inactive."""
    row = fetch_one(_ACTIVE_PRODUCT_SQL, [product_id, Product.Status.ACTIVE.value])
    return None if row is None else (row[0], row[1], bool(row[2]))


def _lock_cart(user_id: int) -> int | None:
    """Lock the user's cart row; its id, or None if the user has none."""
    row = fetch_one(_LOCK_CART_SQL, [user_id])
    return None if row is None else row[0]


def _lock_or_create_cart(user_id: int) -> int:
    """The id of the user's cart, locked (created on their first write)."""
    cart_id = _lock_cart(user_id)
    if cart_id is not None:
        return cart_id
    try:
        with transaction.atomic():
            Cart.objects.create(user_id=user_id)
    except IntegrityError:  # created concurrently: lock theirs
        pass
    return Cart.objects.select_for_update().values_list("pk", flat=True).get(user_id=user_id)


def _own_line(user_id: int, item_id: int) -> QuerySet[CartItem]:
    """The line `item_id` of the user's (locked) cart, as a queryset; empty if it is not theirs."""
    cart_id = _lock_cart(user_id)
    return CartItem.objects.filter(pk=item_id, cart_id=cart_id) if cart_id is not None else CartItem.objects.none()
