"""Per-user limits against stock hoarding, enforced on every checkout path.

One shopper must not hold a product's stock hostage with unpaid orders: every checkout (the
synchronous `checkout_initiate` behind `/checkout/initiate`, `/orders`, cart checkouts and the queued
`/checkout`) and the flash-sale queue (admission as a quick refusal, allocation as the authority)
enforce three limits from the settings:

- MAX_OPEN_ORDERS_PER_USER: unpaid orders (409 TOO_MANY_OPEN_ORDERS);
- MAX_HELD_UNITS_PER_USER: units in those unpaid orders plus this order's (409 HELD_UNITS_LIMIT);
- FLASH_SALE_MAX_PER_USER: units of one flash-sale product across the user's unpaid *and* paid
  orders (409 PURCHASE_LIMIT_EXCEEDED); expired and cancelled orders gave their units back and do
  not count.

Race-free by a per-user lock: a checkout first locks the user's wallet row (`user_checkout_lock`; it
reads the balance the early balance check needs anyway, so the lock costs no statement), and the queue
consumer locks the wallets of a chunk's users in user-id order. Two checkouts of one user therefore
count and create one after the other; under READ COMMITTED the count, read after the lock, sees the
other's committed order. The counts are one bounded query (`user_holdings`: the user's unpaid
orders, at most MAX_OPEN_ORDERS_PER_USER of them, plus their paid orders' lines of the flash-sale
products in question) on the index (user, status).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings

from common.bulk_sql import fetch_all, fetch_one, placeholders
from orders.errors import HeldUnitsLimit, TooManyOpenOrders
from orders.models import OrderStatus
from shop.errors import PurchaseLimitExceeded
from shop.models import User

PAID_STATUSES = (OrderStatus.PAID, OrderStatus.CONFIRMED)


@dataclass
class Holdings:
    """What one user holds now: unpaid orders, units in them, and units per flash-sale product asked about."""

    open_orders: int = 0
    held_units: int = 0
    flash_units: dict[int, int] = field(default_factory=dict)


# The checkout lock and the holdings are read on every checkout; written out rather than built by the
# ORM, whose compiling of them cost more CPU than the queries themselves (docs/REPORT.md).
_WALLET_LOCK_SQL = "SELECT `balance` FROM `shop_pointwallet` WHERE `user_id` = %s FOR UPDATE"
_HOLDINGS_SQL = (
    "SELECT o.user_id, i.order_id, o.status, i.product_id, i.quantity"
    " FROM `orders_orderitem` i JOIN `orders_order` o ON o.id = i.order_id"
    " WHERE o.user_id IN ({users}) AND (o.status = %s{flash})"
)
_HOLDINGS_FLASH_SQL = " OR (o.status IN (%s, %s) AND i.product_id IN ({products}))"


def user_checkout_lock(*, user_id: int) -> int:
    """Lock the user's wallet row (the per-user checkout lock; see the module docstring) and return
    the balance. A user without a wallet (balance 0) has the user row locked instead."""
    row = fetch_one(_WALLET_LOCK_SQL, [user_id])
    if row is None:
        User.objects.select_for_update().filter(pk=user_id).values_list("pk", flat=True).first()
        return 0
    return row[0]


def user_holdings(*, user_ids: Iterable[int], flash_product_ids: Iterable[int] = ()) -> dict[int, Holdings]:
    """The holdings of these users, in one query (users without any are absent: use `Holdings()`)."""
    flash = sorted(set(flash_product_ids))
    users = sorted(set(user_ids))
    if not users:
        return {}
    sql = _HOLDINGS_SQL.format(
        users=placeholders(users), flash=_HOLDINGS_FLASH_SQL.format(products=placeholders(flash)) if flash else ""
    )
    params = [*users, OrderStatus.PENDING_PAYMENT.value]
    if flash:
        params += [*(status.value for status in PAID_STATUSES), *flash]
    rows = fetch_all(sql, params)
    found: dict[int, Holdings] = {}
    open_orders: dict[int, set[int]] = {}
    for user_id, order_id, status, product_id, quantity in rows:
        holding = found.setdefault(user_id, Holdings())
        if status == OrderStatus.PENDING_PAYMENT:
            open_orders.setdefault(user_id, set()).add(order_id)
            holding.held_units += quantity
        if product_id in flash:
            holding.flash_units[product_id] = holding.flash_units.get(product_id, 0) + quantity
    for user_id, orders in open_orders.items():
        found[user_id].open_orders = len(orders)
    return found


def user_limits_check(*, holdings: Holdings, lines: list[tuple[int, int]], flash_product_ids: Iterable[int]) -> None:
    """Refuse a new order of `lines` ((product id, quantity) pairs) that would break a limit."""
    if holdings.open_orders >= settings.MAX_OPEN_ORDERS_PER_USER:
        raise TooManyOpenOrders(data={"limit": settings.MAX_OPEN_ORDERS_PER_USER, "current": holdings.open_orders})
    requested = sum(quantity for _, quantity in lines)
    if holdings.held_units + requested > settings.MAX_HELD_UNITS_PER_USER:
        raise HeldUnitsLimit(
            data={"limit": settings.MAX_HELD_UNITS_PER_USER, "current": holdings.held_units, "requested": requested}
        )
    flash = set(flash_product_ids)
    for product_id, quantity in lines:
        if product_id in flash:
            current = holdings.flash_units.get(product_id, 0)
            if current + quantity > settings.FLASH_SALE_MAX_PER_USER:
                raise PurchaseLimitExceeded(
                    data={
                        "productId": product_id,
                        "limit": settings.FLASH_SALE_MAX_PER_USER,
                        "current": current,
                        "requested": quantity,
                    }
                )


def user_limits_enforce(*, user_id: int, lines: list[tuple[int, int]], flash_product_ids: Iterable[int]) -> None:
    """`user_limits_check` for one user, with their holdings read now (one query). Authoritative only
    under `user_checkout_lock`; without it (queue admission) a quick refusal."""
    flash = sorted(set(flash_product_ids))
    holdings = user_holdings(user_ids=[user_id], flash_product_ids=flash).get(user_id, Holdings())
    user_limits_check(holdings=holdings, lines=lines, flash_product_ids=flash)
