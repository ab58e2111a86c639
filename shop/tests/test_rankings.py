"""Sales statistics: the atomic upsert, the Redis ranking sets and their rebuild from the table."""

import random
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from shop import rankings
from shop.models import Product, SalesDaily
from shop.selectors.catalog import ranking_scores_from_db
from shop.services.catalog import products_set_status, sales_record
from shop.tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def day(days_ago: int):
    return timezone.localdate() - timedelta(days=days_ago)


def record(product_id: int, quantity: int, days_ago: int = 0) -> None:
    """One sale as the outbox consumer records it: in its own transaction, Redis moved after commit."""
    with transaction.atomic():
        sales_record(product_id=product_id, quantity=quantity, day=day(days_ago))


def test_sales_record_upserts_one_row_per_product_and_day(django_capture_on_commit_callbacks):
    product = ProductFactory()
    with django_capture_on_commit_callbacks(execute=True):
        record(product.pk, 2)
        record(product.pk, 3)
        record(product.pk, 4, days_ago=1)
        record(product.pk, -1)  # a paid order was cancelled
        sales_record(product_id=product.pk, quantity=0, day=day(0))  # nothing to record
    assert sorted(SalesDaily.objects.values_list("day", "quantity")) == [(day(1), 4), (day(0), 4)]


def test_sales_record_rolls_back_with_the_callers_transaction(django_capture_on_commit_callbacks):
    product = ProductFactory()
    rankings.rebuild()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                sales_record(product_id=product.pk, quantity=5, day=day(0))
                raise RuntimeError("the consumer's handler failed")
    assert callbacks == [] and not SalesDaily.objects.exists()
    assert rankings.snapshot()["total"] == {}  # Redis was not touched either


def test_incremental_sets_equal_a_rebuild_from_the_table(django_capture_on_commit_callbacks):
    products = [p.pk for p in ProductFactory.create_batch(15)]
    rankings.rebuild()  # built (empty): increments apply from now on
    rng = random.Random(3)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(300):
            record(rng.choice(products), rng.randrange(1, 5), days_ago=rng.choice([0, 0, 0, 1, 2, 6, 7, 30]))
        record(products[0], -2)  # cancellations move the sets too
        record(products[1], -1000)  # ... and a product with nothing left leaves the set
    incremental = rankings.snapshot()
    assert incremental["total"] and incremental[f"daily:{day(0).isoformat()}"]
    assert products[1] not in incremental[f"daily:{day(0).isoformat()}"]

    rankings.rebuild()
    assert rankings.snapshot() == incremental
    # and both agree with the database's own arithmetic, for every period, ties by id
    for period in rankings.PERIODS:
        assert rankings.top(period=period, limit=50) == ranking_scores_from_db(period=period, limit=50, today=day(0)), (
            period
        )


def test_weekly_is_the_seven_days_ending_today():
    product, other = ProductFactory.create_batch(2)
    for days_ago, quantity in [(0, 1), (3, 2), (6, 4), (7, 8)]:
        SalesDaily.objects.create(product=product, day=day(days_ago), quantity=quantity)
    SalesDaily.objects.create(product=other, day=day(7), quantity=100)
    assert rankings.top(period="weekly", limit=10) == [(product.pk, 7)]
    assert rankings.top(period="total", limit=10) == [(other.pk, 100), (product.pk, 15)]
    assert rankings.top(period="daily", limit=10) == [(product.pk, 1)]


def test_sets_are_built_lazily_from_the_table_when_missing():
    product = ProductFactory()
    SalesDaily.objects.create(product=product, day=day(0), quantity=6)  # e.g. seeded, or Redis restarted
    assert rankings.bump(product_id=product.pk, quantity=1, day=day(0)) is False  # not built: not applied
    assert rankings.top(period="daily", limit=10) == [(product.pk, 6)]  # the reader rebuilt it
    assert rankings.bump(product_id=product.pk, quantity=1, day=day(0)) is True


def test_ties_are_ordered_by_id_even_across_the_cut():
    products = ProductFactory.create_batch(12)
    for product in products:
        SalesDaily.objects.create(product=product, day=day(0), quantity=3)
    best = ProductFactory()
    SalesDaily.objects.create(product=best, day=day(0), quantity=9)
    ids = [p.pk for p in products]
    assert rankings.top(period="daily", limit=4) == [(best.pk, 9)] + [(pid, 3) for pid in ids[:3]]
    assert rankings.top(period="daily", limit=13) == [(best.pk, 9)] + [(pid, 3) for pid in ids]
    for rank, pid in enumerate(ids, start=2):
        assert rankings.position(product_id=pid) == (rank, 3)


def test_deactivated_products_leave_the_rankings_and_come_back(django_capture_on_commit_callbacks):
    product, other = ProductFactory.create_batch(2)
    SalesDaily.objects.create(product=product, day=day(0), quantity=5)
    SalesDaily.objects.create(product=other, day=day(1), quantity=1)
    rankings.rebuild()
    with django_capture_on_commit_callbacks(execute=True):
        products_set_status(product_ids=[product.pk], status=Product.Status.INACTIVE)
    assert rankings.top(period="total", limit=10) == [(other.pk, 1)]
    assert rankings.position(product_id=product.pk) == (0, 0)
    with django_capture_on_commit_callbacks(execute=True):
        products_set_status(product_ids=[product.pk], status=Product.Status.ACTIVE)
    assert rankings.top(period="total", limit=10) == [(product.pk, 5), (other.pk, 1)]
    assert rankings.position(product_id=product.pk) == (1, 5)


def test_rebuild_rankings_sums_every_days_sales_into_the_total():
    product = ProductFactory()
    SalesDaily.objects.create(product=product, day=day(0), quantity=2)
    SalesDaily.objects.create(product=product, day=day(40), quantity=3)
    out = StringIO()
    call_command("rebuild_rankings", stdout=out)
    assert "1 daily sets with sales, 1 products ranked in total" in out.getvalue()
    assert rankings.snapshot()["total"] == {product.pk: 5}


@pytest.mark.django_db(transaction=True)
def test_concurrent_consumers_never_lose_an_increment():
    product = ProductFactory()
    rankings.rebuild()
    workers, per_worker = 8, 25
    barrier = threading.Barrier(workers)

    def consumer():
        try:
            barrier.wait()
            for _ in range(per_worker):
                record(product.pk, 1)
        finally:
            connection.close()

    threads = [threading.Thread(target=consumer) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert SalesDaily.objects.get(product=product, day=day(0)).quantity == workers * per_worker
    assert rankings.position(product_id=product.pk) == (1, workers * per_worker)
    assert rankings.snapshot()["total"] == {product.pk: workers * per_worker}
