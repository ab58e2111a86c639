"""Hot updates ride on the COMMIT: one round trip for the UPDATE of a hot row and the COMMIT, its CHECK
constraint as its guard (common.db.hot_update, common/db_backend "the commit tail"; real MariaDB)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from common.db import hot_update, hot_write, run_in_transaction
from common.tests.test_db_backend import server_state
from orders.tests.helpers import make_product, stock_of
from shop.models import Category

pytestmark = pytest.mark.django_db(transaction=True)

RESERVE = "UPDATE `inventory_stock` SET `reserved_quantity` = `reserved_quantity` + %s WHERE `product_id` = %s"


class SoldOut(Exception):
    pass


def reserve(product, quantity: int, *, name: str) -> None:
    """A use case's body: a row of its own, then the hot update of a stock row, written last."""
    Category.objects.create(name=name)
    write = lambda: hot_update(RESERVE, (quantity, product.pk), refused=lambda: SoldOut(product.pk))  # noqa: E731
    hot_write(write, key=product.pk)


def test_the_hot_update_and_the_commit_are_one_round_trip():
    product = make_product(stock=5)
    with CaptureQueriesContext(connection) as captured:
        run_in_transaction(lambda: reserve(product, 2, name="with a tail"))
    sql = [q["sql"] for q in captured.captured_queries]
    assert sql[0].startswith("BEGIN;\nINSERT INTO `shop_category`") and "COMMIT" not in sql
    assert sql[-1].startswith("UPDATE `inventory_stock`") and sql[-1].endswith("COMMIT")
    assert f"+ 2 WHERE `product_id` = {product.pk}" in sql[-1]  # the values, as the server got them
    assert stock_of(product) == (5, 2)
    assert Category.objects.filter(name="with a tail").exists()
    assert server_state() == (1, 0)  # back in autocommit, no transaction left open


def test_a_hot_update_that_breaks_the_rows_constraint_commits_nothing_and_raises_its_refusal():
    product = make_product(stock=1)
    with pytest.raises(SoldOut):
        run_in_transaction(lambda: reserve(product, 2, name="never"))
    assert stock_of(product) == (1, 0)
    assert not Category.objects.filter(name="never").exists()
    assert server_state() == (1, 0)
    run_in_transaction(lambda: reserve(product, 1, name="the next one"))  # the connection goes on
    assert stock_of(product) == (1, 1)
    assert Category.objects.filter(name="the next one").exists()


def test_a_transaction_of_hot_updates_only_still_begins_first():
    """No statement ran before the COMMIT: BEGIN goes as its own round trip, so the tail is one transaction."""
    first, second = make_product(stock=5), make_product(stock=1)

    def body():
        for product, quantity in ((first, 1), (second, 3)):
            hot_write(
                lambda p=product, q=quantity: hot_update(RESERVE, (q, p.pk), refused=lambda p=p: SoldOut(p.pk)),
                key=product.pk,
            )

    with CaptureQueriesContext(connection) as captured, pytest.raises(SoldOut):
        run_in_transaction(body)
    assert captured.captured_queries[0]["sql"] == "BEGIN"
    assert (stock_of(first), stock_of(second)) == ((5, 0), (1, 0))  # the first UPDATE was undone too
    assert server_state() == (1, 0)


def test_of_two_hot_updates_the_second_refused_undoes_the_first():
    first, second = make_product(stock=5), make_product(stock=1)

    def body():
        reserve(first, 1, name="first")
        reserve(second, 3, name="second")

    with CaptureQueriesContext(connection) as captured, pytest.raises(SoldOut) as refused:
        run_in_transaction(body)
    assert refused.value.args == (second.pk,)
    assert captured.captured_queries[-2]["sql"].count("UPDATE `inventory_stock`") == 2  # both, with the COMMIT
    assert captured.captured_queries[-1]["sql"] == "ROLLBACK"
    assert (stock_of(first), stock_of(second)) == ((5, 0), (1, 0))
    assert not Category.objects.filter(name__in=["first", "second"]).exists()


def test_inside_a_savepoint_the_hot_update_runs_at_once_and_is_refused_there():
    product = make_product(stock=1)
    with transaction.atomic():
        with pytest.raises(SoldOut):
            run_in_transaction(lambda: reserve(product, 2, name="undone"))  # a savepoint, rolled back
        run_in_transaction(lambda: reserve(product, 1, name="kept"))
        assert stock_of(product) == (1, 1)  # written before the COMMIT, within the savepoint's scope
    assert set(Category.objects.values_list("name", flat=True)) >= {"kept"}
    assert not Category.objects.filter(name="undone").exists()
    assert stock_of(product) == (1, 1)
