"""Order use cases: checkout (reserve stock, hold coupon, create the order), expiry, cancel, confirm.

Locks follow the one lock order of `common.db` (the order, then its user's rows, the stock rows
last). Each use case is one transaction (`common.db.use_case`), retried whole on lock timeouts and
deadlocks.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from common.bulk_sql import fetch_all, insert_instance, insert_rows, placeholders
from common.db import use_case
from inventory.errors import InsufficientStock
from inventory.services import stock_release, stock_reserve, stock_restock
from orders.errors import (
    CartItemInOpenOrder,
    InsufficientBalanceAtCheckout,
    InvalidItems,
    InvalidTransition,
    OrderNotCancellable,
)
from orders.limits import user_checkout_lock, user_limits_enforce
from orders.locks import lock_order
from orders.models import Order, OrderItem, OrderStatus
from orders.state import can_transition, order_transition
from outbox.services import outbox_enqueue
from payments.services import payment_refund
from shop.errors import ProductNotFound
from shop.models import Product
from shop.pricing import MAX_LINE_QUANTITY, MAX_LINES, line_total
from shop.selectors.cart import cart_lines_for_checkout
from shop.services import coupons as coupon_services


@dataclass(frozen=True)
class LineRequest:
    product_id: int
    quantity: int
    gift_wrap: bool = False
    gift_message: str = ""
    cart_item_id: int | None = None


def new_order_number(*, now: datetime | None = None, suffix: str | None = None) -> str:
    """`O`, the local time to the second, then 8 random hex digits, or `suffix`: the queue consumer
    derives it from the (random, unique) request id, so that it can read back the ids of the orders it
    inserted in one statement by their numbers."""
    return f"O{timezone.localtime(now):%Y%m%d%H%M%S}{suffix or secrets.token_hex(4).upper()}"


def checkout_lines_from_cart(user_id: int, cart_item_ids: list[int]) -> list[LineRequest]:
    items = cart_lines_for_checkout(user_id=user_id, cart_item_ids=cart_item_ids)
    return [LineRequest(i.product_id, i.quantity, i.gift_wrap, i.gift_message, i.pk) for i in items]


def checkout_lines_validate(lines: list[LineRequest]) -> None:
    if not lines or len(lines) > MAX_LINES:
        raise InvalidItems()
    if len({line.product_id for line in lines}) != len(lines):
        raise InvalidItems("Each product may appear only once.", data={"reason": "DUPLICATE_PRODUCT"})
    for line in lines:
        if not 1 <= line.quantity <= MAX_LINE_QUANTITY:
            raise InvalidItems(f"quantity must be between 1 and {MAX_LINE_QUANTITY}.")


@use_case
def checkout_initiate(
    *,
    user_id: int,
    cart_item_ids: list[int] | None = None,
    direct_items: list[LineRequest] | None = None,
    user_coupon_id: int | None = None,
    delivery_address: str = "",
) -> Order:
    """Lock the user (the per-user limits), price the lines, check the balance, create the order, hold
    the coupon, reserve the stock."""
    if (cart_item_ids is None) == (direct_items is None):
        raise InvalidItems("Give exactly one of cartItemIds and directOrderItems.")
    lines = checkout_lines_from_cart(user_id, cart_item_ids) if cart_item_ids is not None else list(direct_items or [])
    checkout_lines_validate(lines)

    products = _checkout_products([line.product_id for line in lines])
    for line in lines:
        product = products.get(line.product_id)
        if product is None or not product.active:
            raise ProductNotFound(data={"productId": line.product_id})
    flash = [line.product_id for line in lines if products[line.product_id].is_flash_sale]
    _refuse_sold_out_flash(lines, products, flash)

    balance = user_checkout_lock(user_id=user_id)  # serializes this user's checkouts: the limits hold
    user_limits_enforce(
        user_id=user_id, lines=[(line.product_id, line.quantity) for line in lines], flash_product_ids=flash
    )
    now = timezone.now()
    priced = []  # (line, unit price, line total)
    for line in lines:
        price = products[line.product_id].price
        priced.append((line, price, line_total(unit_price=price, quantity=line.quantity, gift_wrap=line.gift_wrap)))
    total = sum(amount for _, _, amount in priced)
    discount = 0
    if user_coupon_id is not None:
        discount = coupon_services.user_coupon_quote(
            user_coupon_id=user_coupon_id, user_id=user_id, order_amount=total, now=now
        )
    final = total - discount
    if balance < final:  # early refusal (incident 3); the debit at payment is the real guard
        raise InsufficientBalanceAtCheckout(data={"required": final, "balance": balance})

    expires_at = now + timedelta(seconds=settings.ORDER_HOLD_SECONDS)
    order = insert_instance(
        Order(
            order_number=new_order_number(),
            user_id=user_id,
            total_amount=total,
            discount_amount=discount,
            final_amount=final,
            user_coupon_id=user_coupon_id,
            delivery_address=delivery_address,
            expires_at=expires_at,
        )
    )
    order.created_items = _create_items(order, priced, products)  # the answer is built from these
    if user_coupon_id is not None:
        coupon_services.user_coupon_hold(
            user_coupon_id=user_coupon_id, user_id=user_id, order_amount=total, order_id=order.pk, now=now
        )
    # The stock rows are written last, right before COMMIT (a hot write); flash products guarded.
    lines_wanted = [(line.product_id, line.quantity) for line in lines]
    stock_reserve(order_id=order.pk, lines=lines_wanted, expires_at=expires_at, guarded=flash)
    return order


class CheckoutProduct(NamedTuple):
    """What a checkout reads of a product and its stock row (one plain read, no lock)."""

    name: str
    price: int
    active: bool
    is_flash_sale: bool
    available: int  # units neither sold nor reserved; 0 without a stock row


# Written out: the ORM's `select_related("stock").in_bulk(...)` cost more CPU to compile and to build
# two models per product than the statement cost to run, on every checkout (docs/REPORT.md).
_PRODUCTS_SQL = (
    "SELECT p.`id`, p.`name`, p.`price`, p.`status`, p.`is_flash_sale`,"
    " COALESCE(s.`quantity` - s.`reserved_quantity`, 0) FROM `shop_product` p"
    " LEFT JOIN `inventory_stock` s ON s.`product_id` = p.`id` WHERE p.`id` IN ({ids})"
)


def _checkout_products(product_ids: list[int]) -> dict[int, CheckoutProduct]:
    rows = fetch_all(_PRODUCTS_SQL.format(ids=placeholders(product_ids)), product_ids)
    return {
        product_id: CheckoutProduct(name, price, status == Product.Status.ACTIVE, bool(flash), int(available))
        for product_id, name, price, status, flash, available in rows
    }


def _refuse_sold_out_flash(lines: list[LineRequest], products: dict[int, CheckoutProduct], flash: list[int]) -> None:
    """A flash product that visibly lacks the units (read with the product, no lock) is refused before
    any lock or write; the reservation at the end (guarded by the stock row's CHECK constraints) stays the
    real check."""
    for line in lines:
        if line.product_id in flash:
            available = products[line.product_id].available
            if available < line.quantity:
                raise InsufficientStock(
                    data={"productId": line.product_id, "requested": line.quantity, "available": available}
                )


def _create_items(
    order: Order, priced: list[tuple[LineRequest, int, int]], products: dict[int, CheckoutProduct]
) -> list[OrderItem]:
    """The order's lines. A cart line already backing a live order trips the unique key
    (cart_item_id, cart_item_live): 409 CART_ITEM_IN_OPEN_ORDER, and the whole checkout rolls back."""
    items = [
        OrderItem(
            order=order,
            product_id=line.product_id,
            product_name=products[line.product_id].name,
            quantity=line.quantity,
            unit_price=unit_price,
            gift_wrap=line.gift_wrap,
            gift_message=line.gift_message,
            line_total=amount,
            cart_item_id=line.cart_item_id,
            cart_item_live=True if line.cart_item_id is not None else None,
        )
        for line, unit_price, amount in priced
    ]
    try:
        insert_rows(items)  # one INSERT, as bulk_create; the items' ids stay unread (the answer has none)
    except IntegrityError as exc:
        if "uniq_order_item_live_cart_line" not in str(exc):
            raise
        cart_ids = sorted(line.cart_item_id for line, _, _ in priced if line.cart_item_id is not None)
        raise CartItemInOpenOrder(data={"cartItemIds": cart_ids}) from None
    return items


def _free_cart_lines(order_ids: list[int]) -> None:
    """The order expired or was cancelled: its cart lines may back a new order."""
    OrderItem.objects.filter(order_id__in=order_ids, cart_item_live=True).update(cart_item_live=None)


def _items_payload(order: Order) -> list[dict]:
    return [{"productId": i.product_id, "quantity": i.quantity} for i in order.items.all()]


@use_case
def order_expire(*, order_id: int, now=None) -> bool:
    """Expire one unpaid order whose hold has passed. False if it is paid, cancelled or not yet due."""
    now = now or timezone.now()
    order = lock_order(order_id)
    if order.status != OrderStatus.PENDING_PAYMENT or order.expires_at > now:
        return False
    _expire_locked([order])
    return True


@use_case
def order_force_expire(*, order_id: int) -> Order:
    """Operator (admin): expire an unpaid order now, whatever its hold's end, exactly as the expiry
    job would (stock released, coupon returned, OrderExpired). Any other status is refused with
    InvalidTransition and nothing changes: a paid order is cancelled (refunded), never expired."""
    order = lock_order(order_id)
    if order.status != OrderStatus.PENDING_PAYMENT:
        raise InvalidTransition(data={"status": order.status, "attempted": OrderStatus.EXPIRED})
    _expire_locked([order])
    return order


def _enqueue_closed(order: Order, event_type: str, *, reason: str, was_paid: bool) -> None:
    """The outbox event of an order that expired or was cancelled (same shape for both)."""
    outbox_enqueue(
        aggregate_type="order",
        aggregate_id=order.pk,
        event_type=event_type,
        payload={
            "orderId": order.pk,
            "userId": order.user_id,
            "reason": reason,
            "wasPaid": was_paid,
            "items": _items_payload(order),
        },
    )


def _expire_locked(orders: list[Order]) -> None:
    for order in orders:
        order_transition(order, OrderStatus.EXPIRED)
        if order.user_coupon_id:
            coupon_services.user_coupon_release(order_id=order.pk)
    _free_cart_lines([o.pk for o in orders])
    stock_release(order_ids=[o.pk for o in orders])
    for order in orders:
        _enqueue_closed(order, "OrderExpired", reason="EXPIRED", was_paid=False)


def expire_due_orders(*, batch_size: int = 200, now=None) -> int:
    """Expire due unpaid orders in batches. Rows another transaction holds (a payment) are skipped
    (`skip_locked`) and looked at again next run: payment and expiry can never both win."""
    now = now or timezone.now()
    expired = 0
    while True:
        with transaction.atomic():
            orders = list(
                Order.objects.select_for_update(skip_locked=True)
                .filter(status=OrderStatus.PENDING_PAYMENT, expires_at__lte=now)
                .order_by("pk")[:batch_size]
            )
            if not orders:
                return expired
            _expire_locked(orders)
            expired += len(orders)
        if len(orders) < batch_size:
            return expired


@use_case
def order_cancel(*, order_id: int, user_id: int | None, reason: str = "") -> Order:
    """Cancel an order. Unpaid: release stock and coupon. Paid: refund points, restock, return coupon.
    `user_id=None` is an operator (admin) cancel."""
    order = lock_order(order_id, user_id=user_id)
    if not can_transition(order.status, OrderStatus.CANCELLED):
        raise OrderNotCancellable(data={"status": order.status})
    was_paid = order.status != OrderStatus.PENDING_PAYMENT  # the one unpaid status that can be cancelled
    order_transition(order, OrderStatus.CANCELLED, cancelled_at=timezone.now(), cancel_reason=reason[:255])
    if was_paid:
        payment_refund(order=order)
        if order.user_coupon_id:
            coupon_services.user_coupon_restore(order_id=order.pk)
        _free_cart_lines([order.pk])
        stock_restock(order_id=order.pk)
    else:
        if order.user_coupon_id:
            coupon_services.user_coupon_release(order_id=order.pk)
        _free_cart_lines([order.pk])
        stock_release(order_ids=[order.pk])
    _enqueue_closed(order, "OrderCancelled", reason=reason[:255] or "CANCELLED", was_paid=was_paid)
    return order


@use_case
def order_confirm(*, order_id: int) -> bool:
    """PAID -> CONFIRMED (the outbox consumer's follow-up to PaymentCompleted). False if not PAID."""
    return order_id in orders_confirm(order_ids=[order_id])


def orders_confirm(*, order_ids: Iterable[int]) -> set[int]:
    """PAID -> CONFIRMED for several orders inside the caller's transaction (the outbox consumer's
    chunks): the orders locked in id order (the expiry's order), then the PAID ones moved by one
    update. Returns the ids that moved; the others (not PAID any more, or unknown) are left alone.

    The rows are locked by primary key alone and their status is checked under the lock. With
    `status = 'PAID'` in the locking read, MariaDB may scan the (status, expires_at) index instead,
    and a locking read waits for every record it scans that another transaction holds: each
    payment in flight holds the new 'PAID' entry of its own order. That made the confirmations wait
    for unrelated payments (45 % of the row-lock waits sampled in the Black Friday run)."""
    ids = sorted(set(order_ids))
    if not ids:
        return set()
    locked = fetch_all(_LOCK_ORDERS_SQL.format(ids=placeholders(ids)), ids)
    paid = [pk for pk, status in locked if status == OrderStatus.PAID]
    if paid:
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        with connection.cursor() as cursor:
            cursor.execute(_CONFIRM_SQL.format(ids=placeholders(paid)), [OrderStatus.CONFIRMED, now, now, *paid])
    return set(paid)


# `orders_confirm`'s two statements, written out: through the ORM, compiling them was a quarter of the
# outbox consumer's CPU per PaymentCompleted (py-spy, docs/REPORT.md).
_LOCK_ORDERS_SQL = "SELECT `id`, `status` FROM `orders_order` WHERE `id` IN ({ids}) ORDER BY `id` FOR UPDATE"
_CONFIRM_SQL = "UPDATE `orders_order` SET `status` = %s, `confirmed_at` = %s, `updated_at` = %s WHERE `id` IN ({ids})"
