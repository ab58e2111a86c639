"""The rules of an order line, in one place: its limits and its price.

Serializers, model constraints and services (cart, checkout, the flash-sale queue) derive theirs
from here. Prices are whole won; a line costs its current unit price times the quantity, plus the
gift wrap, which is charged once per line, not per unit.
"""

from __future__ import annotations

MAX_LINE_QUANTITY = 99  # units of one product in a cart line or an order line
MAX_LINES = 50  # lines in a cart, and in one order
MAX_QUEUE_QUANTITY = 10  # units of a flash-sale product in one queued request
GIFT_WRAP_PRICE = 2_000  # per line


def line_total(*, unit_price: int, quantity: int, gift_wrap: bool = False) -> int:
    return unit_price * quantity + (GIFT_WRAP_PRICE if gift_wrap else 0)
