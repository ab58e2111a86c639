"""Stock moves. Every function runs inside the caller's transaction (the operator's restocks open
their own when called alone); every write bumps `version`. The stock rows are the hot rows every
buyer shares: their writes are `common.db.hot_write`s, done last, right before COMMIT, in
product-id order (the lock order of `common.db`), so a row is locked for one statement and the COMMIT.

    reserve:  reserved += q                       (checkout; the queue consumer, a batch at once)
    consume:  quantity -= q, reserved -= q         (payment)
    release:  reserved -= q                       (expiry, cancel of an unpaid order)
    restock:  quantity += q                       (cancel of a paid order)
    open:     a new product's row                 (catalog: product created)
    add:      quantity += q, or up to `available`  (operator: admin, `manage.py restock`)

Two ways to reserve, per product:
- locked (ordinary products): `SELECT ... FOR UPDATE`, check the units, then the UPDATE with the
  version bump;
- guarded (flash-sale products, `guarded=`): the UPDATE alone, no read before it. A sold-out flash
  product is refused before any lock by checkout's plain read of the row (orders.services), so
  buyers do not queue behind the row's lock once it is empty (the old service's incident 2).
Either way the UPDATE is a `common.db.hot_update`: the row's CHECK constraints (0 <= reserved <=
quantity) are its guard, so it is sent with the COMMIT in one round trip and the row is locked for
the server's UPDATE and COMMIT only. A reservation that would oversell breaks the constraint and is
refused with InsufficientStock; nothing of the checkout is committed.
Consume, release and restock are hot updates too: their units are accounted for by the order's
reservations, the constraints only make a broken invariant fail loudly instead of going negative.
The queue consumer's batch (`stock_lock` + `stock_reserve_batch`) locks the row first and writes it
with `WHERE version = <the version read under the lock>`, which can only match while its lock holds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from django.db import connection
from django.db.models import Expression, F, Value

from common.bulk_sql import fetch_all, insert_rows, placeholders
from common.db import hot_update, hot_write, use_case
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
    ids = sorted(set(product_ids))
    if not ids:
        return {}
    return {row.product_id: row for row in Stock.objects.raw(_LOCK_STOCKS_SQL.format(ids=placeholders(ids)), ids)}


# The hot updates of a stock row (`common.db.hot_update`): its CHECK constraints are their guard.
_RESERVE_SQL = (
    "UPDATE `inventory_stock` SET `reserved_quantity` = `reserved_quantity` + %s, `version` = `version` + 1"
    " WHERE `product_id` = %s"
)
_MOVE_SQL = (
    "UPDATE `inventory_stock` SET `quantity` = `quantity` + %s, `reserved_quantity` = `reserved_quantity` + %s,"
    " `version` = `version` + 1 WHERE `product_id` = %s"
)
# The stock rows' lock, written out and read through `raw` (models all the same): the ORM's compiling of
# it cost more CPU than running it, on every reservation of a product that is not a flash sale.
_LOCK_STOCKS_SQL = (
    "SELECT " + ", ".join(f"`{field.column}`" for field in Stock._meta.concrete_fields) + " FROM `inventory_stock`"
    " WHERE `product_id` IN ({ids}) ORDER BY `product_id` FOR UPDATE"
)
# What a move reads and writes of the reservations, written out: building these two statements cost the
# ORM more CPU than running them, on every payment (docs/REPORT.md).
_HELD_SQL = (
    "SELECT `id`, `product_id`, `quantity` FROM `inventory_reservation`"
    " WHERE `order_id` IN ({orders}) AND `status` = %s"
)
_SET_STATUS_SQL = "UPDATE `inventory_reservation` SET `status` = %s WHERE `id` IN ({ids}) AND `status` = %s"


class Moved(NamedTuple):
    """A reservation a move took: its product and units (what the stock rows and the events need)."""

    id: int
    product_id: int
    quantity: int


def _reserve_locked(product_id: int, version: int, quantity: int) -> None:
    """The guarded reservation on a row we locked and read at `version` (the queue's batch)."""
    updated = Stock.objects.filter(pk=product_id, version=version).update(
        reserved_quantity=F("reserved_quantity") + quantity, version=F("version") + 1
    )
    if updated != 1:  # impossible while we hold the lock; refuse rather than oversell
        raise RuntimeError(f"stock row of product {product_id} changed under its lock")


def stock_reserve(
    *, order_id: int, lines: Iterable[tuple[int, int]], expires_at: datetime, guarded: Iterable[int] = ()
) -> None:
    """Reserve every line or none. The reservations are inserted now; the stock rows are written last
    (a hot write), locked or `guarded` per product (module docstring). Raises InsufficientStock."""
    _require_transaction()
    wanted = _merge(lines)
    guarded = frozenset(guarded)
    insert_rows(
        [
            Reservation(order_id=order_id, product_id=product_id, quantity=quantity, expires_at=expires_at)
            for product_id, quantity in wanted.items()
        ]
    )

    def write() -> None:
        for product_id, quantity in wanted.items():  # product-id order
            if product_id not in guarded:
                stock = _lock_stocks([product_id]).get(product_id)
                available = stock.available_quantity if stock else 0
                if stock is None or available < quantity:
                    raise InsufficientStock(
                        data={"productId": product_id, "requested": quantity, "available": available}
                    )
            hot_update(_RESERVE_SQL, (quantity, product_id), refused=_sold_out(product_id, quantity))

    hot_write(write, key=next(iter(wanted), 0))


def _sold_out(product_id: int, quantity: int) -> Callable[[], InsufficientStock]:
    """The refusal of a reservation the row's constraint refused (read after the rollback)."""
    return lambda: InsufficientStock(
        data={"productId": product_id, "requested": quantity, "available": stock_available(product_id=product_id)}
    )


def stock_available(*, product_id: int) -> int:
    """Units available now (a plain read: for messages and quick refusals, never a reservation's guard)."""
    row = Stock.objects.filter(pk=product_id).values_list("quantity", "reserved_quantity").first()
    return row[0] - row[1] if row else 0


@dataclass(frozen=True)
class LockedStock:
    """One product's stock row, locked by `stock_lock` for a batch allocation."""

    product_id: int
    available: int  # 0 when the product has no stock row
    version: int | None


def stock_lock(*, product_id: int) -> LockedStock:
    """Lock one product's stock row and read what is available (the queue consumer's one hot-row lock:
    it decides which requests of a batch win, then reserves for all of them with `stock_reserve_batch`)."""
    _require_transaction()
    stock = _lock_stocks([product_id]).get(product_id)
    if stock is None:
        return LockedStock(product_id, 0, None)
    return LockedStock(product_id, stock.available_quantity, stock.version)


def stock_reserve_batch(*, stock: LockedStock, reservations: Sequence[tuple[int, int]], expires_at: datetime) -> None:
    """Reserve `(order_id, quantity)` for many orders of the product locked by `stock_lock`: one
    multi-row INSERT of the reservations, one guarded UPDATE of the stock row."""
    _require_transaction()
    if not reservations:
        return
    wanted = sum(quantity for _, quantity in reservations)
    if stock.version is None or wanted > stock.available:
        raise InsufficientStock(data={"productId": stock.product_id, "requested": wanted, "available": stock.available})
    insert_rows(
        [
            Reservation(order_id=order_id, product_id=stock.product_id, quantity=quantity, expires_at=expires_at)
            for order_id, quantity in reservations
        ]
    )
    _reserve_locked(stock.product_id, stock.version, wanted)


def _move(order_ids: list[int], *, source: str, target: str, quantity_delta: int, reserved_delta: int) -> list[Moved]:
    """Move the reservations of `order_ids` from `source` to `target` status now, and adjust the stock
    rows last (a hot write, guarded: the units must be there). Returns the reservations moved."""
    _require_transaction()
    if not order_ids:
        return []
    reservations = [
        Moved(*row) for row in fetch_all(_HELD_SQL.format(orders=placeholders(order_ids)), [*order_ids, str(source)])
    ]
    if not reservations:
        return []
    ids = [r.id for r in reservations]
    with connection.cursor() as cursor:
        cursor.execute(_SET_STATUS_SQL.format(ids=placeholders(ids)), [str(target), *ids, str(source)])
    per_product: dict[int, int] = defaultdict(int)
    for reservation in reservations:
        per_product[reservation.product_id] += reservation.quantity

    def write() -> None:
        for product_id, quantity in sorted(per_product.items()):
            # the reservations say the units are there: a broken constraint is a broken invariant
            broken = RuntimeError(f"stock row of product {product_id} does not hold {quantity} {source} units")
            hot_update(
                _MOVE_SQL,
                (quantity_delta * quantity, reserved_delta * quantity, product_id),
                refused=lambda broken=broken: broken,
            )

    hot_write(write, key=min(per_product))
    return reservations


def stock_consume(*, order_id: int) -> list[Moved]:
    """Payment: the reserved units become sold. Returns the order's reservations (product, quantity)."""
    return _move(
        [order_id],
        source=Reservation.Status.ACTIVE,
        target=Reservation.Status.CONSUMED,
        quantity_delta=-1,
        reserved_delta=-1,
    )


def stock_release(*, order_ids: list[int]) -> list[Moved]:
    """Expiry or cancel of unpaid orders: the held units become available again."""
    return _move(
        order_ids,
        source=Reservation.Status.ACTIVE,
        target=Reservation.Status.RELEASED,
        quantity_delta=0,
        reserved_delta=-1,
    )


def stock_restock(*, order_id: int) -> list[Moved]:
    """Cancel of a paid order: the sold units go back on the shelf."""
    return _move(
        [order_id],
        source=Reservation.Status.CONSUMED,
        target=Reservation.Status.RELEASED,
        quantity_delta=1,
        reserved_delta=0,
    )


def stock_open(*, product_id: int, quantity: int = 0) -> None:
    """A new product's stock row (no-op if it has one): created with the product, in its transaction."""
    Stock.objects.get_or_create(product_id=product_id, defaults={"quantity": quantity})


@use_case
def stock_add(*, product_ids: Iterable[int], quantity: int) -> int:
    """Operator restock (admin): add `quantity` units to each product's stock row. Returns the rows."""
    if quantity <= 0:
        raise ValueError("quantities must be positive")
    return _restock(product_ids, F("quantity") + quantity)


@use_case
def stock_set_available(*, product_ids: Iterable[int], available: int) -> int:
    """Operator/bench restock (`manage.py restock`): make exactly `available` units available, live
    reservations included (quantity = reserved + available). Returns the rows."""
    if available < 0:
        raise ValueError("available must be >= 0")
    return _restock(product_ids, F("reserved_quantity") + Value(available))


def _restock(product_ids: Iterable[int], quantity: Expression) -> int:
    """The one operator restock: lock the rows in product-id order, then set their quantity."""
    locked = sorted(_lock_stocks(product_ids))
    return Stock.objects.filter(pk__in=locked).update(quantity=quantity, version=F("version") + 1)
