"""Allocation (the `checkout` consumer): answer the QUEUED requests of a polled batch, product by
product, in chunks of one transaction each (see the package docstring for what this guarantees).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from common.bulk_sql import insert_rows, update_by_pk
from common.db import run_in_transaction
from common.errors import DomainError
from common.sse.push import SseBatch, StoredEvent, sse_publish
from common.sse.storage import sse_trim
from inventory.errors import InsufficientStock
from inventory.services import LockedStock, stock_lock, stock_reserve_batch
from orders.errors import SoldOut
from orders.limits import Holdings, user_holdings, user_limits_check
from orders.models import FlashSaleControl, Order, OrderItem, QueueRequest, QueueRequestStatus
from orders.queue.keys import record_answered
from orders.queue.metrics import queue_answers_count
from orders.services import new_order_number
from shop.errors import InsufficientBalance
from shop.models import PointWallet, Product
from shop.pricing import line_total

log = logging.getLogger(__name__)

CHUNK_SIZE = 1000  # request rows per consumer transaction

QUEUED, COMPLETED, FAILED = QueueRequestStatus.QUEUED, QueueRequestStatus.COMPLETED, QueueRequestStatus.FAILED
SOLD_OUT, INSUFFICIENT_STOCK, INSUFFICIENT_BALANCE = SoldOut.code, InsufficientStock.code, InsufficientBalance.code


def queue_process_batch(*, request_ids: Iterable[uuid.UUID], wake_product_ids: Iterable[int] = ()) -> int:
    """Answer the QUEUED requests a polled batch names (see the module docstring). Returns how many."""
    up_to: dict[int, int] = {}
    named = QueueRequest.objects.filter(request_id__in=list(request_ids), kind=QueueRequest.Kind.PRODUCT)
    for product_id, row_id in named.values_list("product_id", "id"):
        up_to[product_id] = max(up_to.get(product_id, 0), row_id)
    for product_id in set(wake_product_ids):
        newest = (
            QueueRequest.objects.filter(product_id=product_id, status=QUEUED)
            .order_by("-id")
            .values_list("id", flat=True)
            .first()
        )
        if newest is not None:
            up_to[product_id] = max(up_to.get(product_id, 0), newest)
    paused = set(
        FlashSaleControl.objects.filter(product_id__in=up_to, paused=True).values_list("product_id", flat=True)
    )
    answered = 0
    for product_id in sorted(up_to):
        if product_id in paused:
            log.info("queue: product %s is paused; its requests stay QUEUED", product_id)
            continue
        answered += _process_product(product_id, up_to[product_id])
    return answered


def _process_product(product_id: int, up_to_id: int) -> int:
    answered = 0
    while True:
        count = run_in_transaction(lambda: _allocate_chunk(product_id, up_to_id))
        answered += count
        if count < CHUNK_SIZE:
            return answered


def _allocate_chunk(product_id: int, up_to_id: int) -> int:
    """One transaction: lock up to CHUNK_SIZE QUEUED rows (oldest first) and the stock row, answer them all."""
    rows = list(
        QueueRequest.objects.select_for_update()
        .filter(product_id=product_id, status=QUEUED, id__lte=up_to_id)
        .order_by("id")[:CHUNK_SIZE]
    )
    if not rows:
        return 0
    product = Product.objects.only("id", "name", "price").get(pk=product_id)
    user_ids = [r.user_id for r in rows]
    events = SseBatch(user_ids)  # the users' SSE counters, then their wallets, before the hot stock row
    balances = _lock_wallets(user_ids)  # the per-user checkout lock: the limits below are authoritative
    holdings = user_holdings(user_ids=user_ids, flash_product_ids=[product_id])
    stock = stock_lock(product_id=product_id)  # the one hot-row lock
    available = stock.available
    winners: list[QueueRequest] = []
    losers: dict[str, list[QueueRequest]] = defaultdict(list)
    for row in rows:
        holding = holdings.setdefault(row.user_id, Holdings())
        refusal = _limit_refusal(holding, row)
        if refusal is not None:
            losers[refusal].append(row)
        elif balances.get(row.user_id, 0) < line_total(unit_price=product.price, quantity=row.quantity):
            losers[INSUFFICIENT_BALANCE].append(row)
        elif row.quantity > available:
            losers[SOLD_OUT if available == 0 else INSUFFICIENT_STOCK].append(row)
        else:
            winners.append(row)
            available -= row.quantity
            holding.open_orders += 1
            holding.held_units += row.quantity
            holding.flash_units[product_id] = holding.flash_units.get(product_id, 0) + row.quantity
    now = timezone.now()
    if winners:
        _allocate(product, stock, winners, now)
    for code, group in losers.items():
        QueueRequest.objects.filter(pk__in=[r.pk for r in group], status=QUEUED).update(
            status=FAILED, live=None, error_code=code, completed_at=now
        )
        for row in group:
            row.status, row.error_code = FAILED, code
    for row in rows:
        events.add(row.user_id, *_result_event(row))
    stored = events.store()
    transaction.on_commit(partial(_after_commit, product_id, stored, len(rows), sold_out=available == 0))
    transaction.on_commit(partial(queue_answers_count, len(winners), {c: len(g) for c, g in losers.items()}))
    return len(rows)


def _lock_wallets(user_ids: list[int]) -> dict[int, int]:
    """Lock the users' wallet rows in user-id order (as `orders.limits.user_checkout_lock` does for one
    user); returns their balances."""
    rows = PointWallet.objects.select_for_update().filter(user_id__in=sorted(set(user_ids))).order_by("user_id")
    return dict(rows.values_list("user_id", "balance"))


def _limit_refusal(holding: Holdings, row: QueueRequest) -> str | None:
    """The error code of the per-user limit this request would break (orders/limits.py), or None."""
    try:
        user_limits_check(holdings=holding, lines=[(row.product_id, row.quantity)], flash_product_ids=[row.product_id])
    except DomainError as refused:
        return refused.code
    return None


def _allocate(product: Product, stock: LockedStock, winners: list[QueueRequest], now: datetime) -> None:
    """Create the winners' orders, reserve their stock (one batch), mark their requests COMPLETED."""
    expires_at = now + timedelta(seconds=settings.ORDER_HOLD_SECONDS)
    orders = _create_orders(product, winners, now, expires_at)
    stock_reserve_batch(
        stock=stock,
        reservations=[(order.pk, row.quantity) for row, order in zip(winners, orders, strict=True)],
        expires_at=expires_at,
    )
    for row, order in zip(winners, orders, strict=True):
        row.status, row.live, row.order, row.completed_at = COMPLETED, None, order, now
    # one UPDATE for all (`bulk_update` would build a CASE per row and field: seconds of CPU per thousand)
    update_by_pk(
        QueueRequest, {row.pk: row.order_id for row in winners}, "order", status=COMPLETED, live=None, completed_at=now
    )


def _create_orders(product: Product, winners: list[QueueRequest], now: datetime, expires_at: datetime) -> list[Order]:
    """The winners' orders and order items, in two multi-row INSERTs; returns the orders with their ids."""
    orders = [
        Order(
            order_number=new_order_number(now=now, suffix=row.request_id.hex[:12].upper()),
            user_id=row.user_id,
            total_amount=line_total(unit_price=product.price, quantity=row.quantity),
            discount_amount=0,
            final_amount=line_total(unit_price=product.price, quantity=row.quantity),
            expires_at=expires_at,
        )
        for row in winners
    ]
    insert_rows(orders)
    numbers = [order.order_number for order in orders]
    ids = dict(Order.objects.filter(order_number__in=numbers).values_list("order_number", "pk"))
    for order in orders:
        order.pk = ids[order.order_number]
    insert_rows(
        [
            OrderItem(
                order_id=order.pk,
                product_id=product.pk,
                product_name=product.name,
                quantity=row.quantity,
                unit_price=product.price,
                line_total=line_total(unit_price=product.price, quantity=row.quantity),
            )
            for row, order in zip(winners, orders, strict=True)
        ]
    )
    return orders


def _result_event(row: QueueRequest) -> tuple[str, dict]:
    payload = {
        "requestId": str(row.request_id),
        "status": row.status,
        "productId": row.product_id,
        "quantity": row.quantity,
        "queuePosition": row.queue_position,
    }
    return result_event(row, payload)


def result_event(row: QueueRequest, payload: dict) -> tuple[str, dict]:
    """The SSE result of an answered request (either queue): `checkout-completed` with the order, or
    `checkout-failed` with the error code, added to the request's own `payload`."""
    if row.status == COMPLETED:
        order = row.order
        assert order is not None
        payload.update(
            orderId=order.pk, orderNumber=order.order_number, finalAmount=order.final_amount, expiresAt=order.expires_at
        )
        return "checkout-completed", payload
    payload["errorCode"] = row.error_code
    return "checkout-failed", payload


def _after_commit(product_id: int, stored: list[StoredEvent], answered: int, *, sold_out: bool) -> None:
    sse_publish(stored)
    try:
        sse_trim()
    except DatabaseError:
        log.warning("queue: could not trim old SSE events", exc_info=True)
    record_answered(product_id, answered, sold_out=sold_out)
