"""Stock moves. Every function runs inside the caller's transaction and locks stock rows in
product-id order with `select_for_update()`; every locked write bumps `version`. The stock rows are
the hot rows every buyer shares: callers lock them last (the lock order of `common.db`).

    reserve:  reserved += q                       (checkout)
    consume:  quantity -= q, reserved -= q         (payment)
    release:  reserved -= q                       (expiry, cancel of an unpaid order)
    restock:  quantity += q                       (cancel of a paid order)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db import connection
from django.db.models import F

from inventory.errors import InsufficientStock
from inventory.models import Reservation, Stock


def _require_transaction() -> None:
    if not connection.in_atomic_block:
        raise RuntimeError("stock changes must run inside the caller's transaction")


def _merge(lines: Iterable[tuple[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = defaultdict(int)
    for product_id, quantity in lines:
        if quantity <= 0:
            raise ValueError("quantities must be positive")
        merged[product_id] += quantity
    return dict(sorted(merged.items()))


def _lock_stocks(product_ids: Iterable[int]) -> dict[int, Stock]:
    rows = Stock.objects.select_for_update().filter(product_id__in=sorted(set(product_ids))).order_by("product_id")
    return {row.product_id: row for row in rows}


def stock_reserve(*, order_id: int, lines: Iterable[tuple[int, int]], expires_at: datetime) -> None:
    """Reserve every line or none: one locked read per product (no separate availability read)."""
    _require_transaction()
    wanted = _merge(lines)
    stocks = _lock_stocks(wanted)
    for product_id, quantity in wanted.items():
        stock = stocks.get(product_id)
        available = stock.available_quantity if stock else 0
        if available < quantity:
            raise InsufficientStock(data={"productId": product_id, "requested": quantity, "available": available})
    for product_id, quantity in wanted.items():
        Stock.objects.filter(pk=product_id).update(
            reserved_quantity=F("reserved_quantity") + quantity, version=F("version") + 1
        )
    Reservation.objects.bulk_create(
        Reservation(order_id=order_id, product_id=product_id, quantity=quantity, expires_at=expires_at)
        for product_id, quantity in wanted.items()
    )


def _move(order_ids: list[int], *, source: str, target: str, quantity_delta: int, reserved_delta: int) -> int:
    """Move the reservations of `order_ids` from `source` to `target` status and adjust the stock rows."""
    _require_transaction()
    reservations = list(Reservation.objects.filter(order_id__in=order_ids, status=source))
    if not reservations:
        return 0
    moved = Reservation.objects.filter(pk__in=[r.pk for r in reservations], status=source).update(status=target)
    per_product: dict[int, int] = defaultdict(int)
    for reservation in reservations:
        per_product[reservation.product_id] += reservation.quantity
    _lock_stocks(per_product)  # last: the hot rows (see the lock order in common.db)
    for product_id, quantity in sorted(per_product.items()):
        Stock.objects.filter(pk=product_id).update(
            quantity=F("quantity") + quantity_delta * quantity,
            reserved_quantity=F("reserved_quantity") + reserved_delta * quantity,
            version=F("version") + 1,
        )
    return moved


def stock_consume(*, order_id: int) -> int:
    """Payment: the reserved units become sold."""
    return _move(
        [order_id],
        source=Reservation.Status.ACTIVE,
        target=Reservation.Status.CONSUMED,
        quantity_delta=-1,
        reserved_delta=-1,
    )


def stock_release(*, order_ids: list[int]) -> int:
    """Expiry or cancel of unpaid orders: the held units become available again."""
    return _move(
        order_ids,
        source=Reservation.Status.ACTIVE,
        target=Reservation.Status.RELEASED,
        quantity_delta=0,
        reserved_delta=-1,
    )


def stock_restock(*, order_id: int) -> int:
    """Cancel of a paid order: the sold units go back on the shelf."""
    return _move(
        [order_id],
        source=Reservation.Status.CONSUMED,
        target=Reservation.Status.RELEASED,
        quantity_delta=1,
        reserved_delta=0,
    )


def stock_add(*, product_id: int, quantity: int) -> Stock:
    """Operator restock (admin): add units to a product's stock row."""
    _require_transaction()
    _lock_stocks([product_id])
    Stock.objects.filter(pk=product_id).update(quantity=F("quantity") + quantity, version=F("version") + 1)
    return Stock.objects.get(pk=product_id)
