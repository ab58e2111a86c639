"""Cart reads: a cart as the API shows it (priced from current product prices), and the lines a
checkout takes."""

from __future__ import annotations

from dataclasses import dataclass

from common.bulk_sql import fetch_all
from shop.errors import CartItemNotFound
from shop.models import Cart, CartItem
from shop.pricing import line_total


@dataclass(slots=True)
class CartLine:
    """A cart line as the API shows it, with its product's current name and price. A plain row, not
    a model instance: a cart of 50 lines is read and answered on every cart request, and building
    and serialising model instances cost most of that request's CPU (docs/REPORT.md)."""

    id: int
    product_id: int
    product_name: str
    unit_price: int
    quantity: int
    gift_wrap: bool
    gift_message: str

    @property
    def pk(self) -> int:
        return self.id

    @property
    def line_total(self) -> int:
        """The line at its product's current price (`shop.pricing.line_total`)."""
        return line_total(unit_price=self.unit_price, quantity=self.quantity, gift_wrap=self.gift_wrap)


@dataclass(frozen=True)
class CartView:
    """A cart as the API shows it; `id` is None for a user who never wrote to a cart."""

    id: int | None
    user_id: int
    items: list[CartLine]

    def find(self, product_id: int) -> CartLine | None:
        """The line of this product, or None."""
        return next((item for item in self.items if item.product_id == product_id), None)

    def line(self, product_id: int) -> CartLine:
        """The line of this product (KeyError if the cart has none)."""
        if (item := self.find(product_id)) is None:
            raise KeyError(product_id)
        return item

    @property
    def total_item_count(self) -> int:
        return len(self.items)

    @property
    def total_quantity(self) -> int:
        return sum(item.quantity for item in self.items)

    @property
    def total_price(self) -> int:
        return sum(item.line_total for item in self.items)


def cart_get(*, user_id: int) -> CartView:
    """The user's cart in one query when it has lines (their cart id comes with them)."""
    rows = fetch_all(_LINES_OF_USER_SQL, [user_id])
    if rows:
        return CartView(id=rows[0][0], user_id=user_id, items=[_line(row) for row in rows])
    cart_id = Cart.objects.filter(user_id=user_id).values_list("pk", flat=True).first()
    return CartView(id=cart_id, user_id=user_id, items=[])


def cart_lines(*, cart_id: int) -> list[CartLine]:
    """A cart's lines with their products, in the order the API shows them."""
    return [_line(row) for row in fetch_all(_LINES_OF_CART_SQL, [cart_id])]


# What a cart's answer and its writes read of a line and its product: the cart id, then CartLine's
# fields in order; not the product's description and timestamps (the test of the cart's one query
# pins it). Written out rather than built by the ORM: compiling this join cost 0.27 ms of CPU on every
# cart request, the query itself 0.04 ms (docs/REPORT.md).
_LINES_SQL = (
    "SELECT ci.cart_id, ci.id, ci.product_id, p.name, p.price, ci.quantity, ci.gift_wrap, ci.gift_message"
    " FROM shop_cartitem ci JOIN shop_product p ON p.id = ci.product_id"
)
_LINES_OF_CART_SQL = _LINES_SQL + " WHERE ci.cart_id = %s ORDER BY ci.id"
_LINES_OF_USER_SQL = _LINES_SQL + " JOIN shop_cart c ON c.id = ci.cart_id WHERE c.user_id = %s ORDER BY ci.id"


def _line(row: tuple) -> CartLine:
    _cart_id, line_id, product_id, name, price, quantity, gift_wrap, gift_message = row
    return CartLine(line_id, product_id, name, price, quantity, bool(gift_wrap), gift_message)


def cart_lines_for_checkout(*, user_id: int, cart_item_ids: list[int]) -> list[CartItem]:
    """The given lines of the user's cart with their products, by id; 404 CART_ITEM_NOT_FOUND naming
    every id that is not a line of this user's cart."""
    wanted = sorted(set(cart_item_ids))
    items = list(CartItem.objects.filter(pk__in=wanted, cart__user_id=user_id).select_related("product").order_by("pk"))
    missing = sorted(set(wanted) - {item.pk for item in items})
    if missing:
        raise CartItemNotFound(data={"cartItemIds": missing})
    return items
