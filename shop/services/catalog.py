"""Catalog writes: products, and the daily sales statistics behind the popular list and rankings.

Cache and ranking effects run after the transaction commits (`transaction.on_commit`), never
inside it, and a Redis failure there is logged, not raised: the database is the truth and every
cached figure can be rebuilt from it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from functools import partial

from django.db import connection, transaction
from redis.exceptions import RedisError

from common.db import use_case
from inventory.services import stock_open
from shop import rankings
from shop.caches import catalog_generation_bump, sales_caches_invalidate
from shop.models import Product, SalesDaily

log = logging.getLogger(__name__)


def catalog_changed(*, product_ids: Iterable[int] = ()) -> None:
    """Call inside the transaction that changed products or categories (admin, code, imports).

    After commit: every cached page, detail, popular list and ranking built before becomes
    unreachable, and the named products' ranking scores are re-synced (a deactivated product
    leaves the rankings, a reactivated one returns).
    """
    ids = sorted(set(product_ids))
    transaction.on_commit(partial(_after_catalog_change, ids), robust=True)


def _after_catalog_change(product_ids: list[int]) -> None:
    catalog_generation_bump()
    try:
        for product_id in product_ids:
            rankings.sync_product(product_id=product_id)
    except RedisError as exc:
        log.warning("rankings not re-synced for %s (%s); run rebuild_rankings", product_ids, exc)


@use_case
def product_create(
    *,
    name: str,
    price: int,
    category_id: int,
    description: str = "",
    is_flash_sale: bool = False,
    stock: int = 0,
) -> Product:
    """A product and its stock row, in one transaction."""
    product = Product.objects.create(
        name=name, description=description, price=price, category_id=category_id, is_flash_sale=is_flash_sale
    )
    stock_open(product_id=product.pk, quantity=stock)
    catalog_changed(product_ids=[product.pk])
    return product


def sales_record(*, product_id: int, quantity: int, day: date) -> None:
    """Add `quantity` sold (negative: a paid order was cancelled) to the product's row for `day`.

    Runs inside the caller's transaction (the outbox consumer's, next to its inbox row) as one
    atomic upsert, so concurrent consumers never lose an increment. After that transaction
    commits, the ranking sets move by the same amount and the popular list and today's rankings
    are invalidated.
    """
    sales_record_many(sales=[(product_id, day, quantity)])


def sales_record_many(*, sales: Iterable[tuple[int, date, int]]) -> None:
    """Several `sales_record`s (product id, day, quantity) in one upsert: quantities of one product
    and day summed, rows written in (product, day) order, so that concurrent consumers lock these
    hot rows in one order. After commit: the ranking sets in one Redis round trip, the caches
    invalidated once."""
    totals: dict[tuple[int, date], int] = defaultdict(int)
    for product_id, day, quantity in sales:
        totals[(product_id, day)] += quantity
    rows = [(product_id, day, quantity) for (product_id, day), quantity in sorted(totals.items()) if quantity]
    if not rows:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SalesDaily._meta.db_table} (product_id, day, quantity) VALUES "
            + ", ".join(["(%s, %s, %s)"] * len(rows))
            + " ON DUPLICATE KEY UPDATE quantity = quantity + VALUES(quantity)",
            [value for row in rows for value in row],
        )
    transaction.on_commit(partial(_after_sales, rows), robust=True)


def _after_sales(rows: list[tuple[int, date, int]]) -> None:
    try:
        rankings.bump_many(sales=rows)
    except RedisError as exc:
        log.warning("ranking bumps lost for products %s (%s); run rebuild_rankings", sorted({r[0] for r in rows}), exc)
    sales_caches_invalidate()


def product_saved(*, product: Product, created: bool) -> None:
    """Call inside the transaction that saved `product` (the admin does): a new product gets its
    stock row, and the caches and rankings follow the change after commit."""
    if created:
        stock_open(product_id=product.pk)
    catalog_changed(product_ids=[product.pk])


def products_set_status(*, product_ids: Iterable[int], status: str) -> int:
    """Activate or deactivate products in bulk. Returns how many rows changed."""
    ids = sorted(set(product_ids))
    changed = Product.objects.filter(pk__in=ids).exclude(status=status).update(status=status)
    catalog_changed(product_ids=ids)
    return changed
