"""`common.db.hot_write`: a shared row's write comes last, whoever nests whom (real MariaDB)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from common.db import hot_write, run_in_transaction, use_case
from common.errors import Conflict
from conftest import executed_sql
from inventory.models import Stock
from orders.tests.helpers import make_product

pytestmark = pytest.mark.django_db(transaction=True)


class Refused(Conflict):
    code = "REFUSED"


def bump(product_id: int, *, refuse: bool = False):
    def write() -> None:
        Stock.objects.filter(pk=product_id).update(version=999)
        if refuse:
            raise Refused()

    return write


def test_a_nested_use_cases_hot_write_runs_after_everything_its_caller_does():
    hot, other = make_product(), make_product()

    @use_case
    def reserve() -> None:
        hot_write(bump(hot.pk), key=hot.pk)

    def caller() -> None:
        reserve()
        Stock.objects.filter(pk=other.pk).update(quantity=5)  # after the nested use case, yet before its write

    with CaptureQueriesContext(connection) as ctx:
        run_in_transaction(caller)
    updates = [sql for sql in executed_sql(ctx) if sql.startswith("UPDATE")]
    assert len(updates) == 2 and f"= {other.pk}" in updates[0] and f"= {hot.pk}" in updates[1]
    assert not any(sql.startswith("SAVEPOINT") for sql in executed_sql(ctx))  # joined, no savepoint
    assert Stock.objects.get(pk=hot.pk).version == 999


def test_hot_writes_run_in_key_order():
    a, b = make_product(), make_product()
    with CaptureQueriesContext(connection) as ctx:
        run_in_transaction(lambda: [hot_write(bump(b.pk), key=b.pk), hot_write(bump(a.pk), key=a.pk)])
    updates = [sql for sql in executed_sql(ctx) if sql.startswith("UPDATE")]
    assert f"= {a.pk}" in updates[0] and f"= {b.pk}" in updates[1]


def test_a_refused_hot_write_rolls_the_whole_transaction_back():
    hot, other = make_product(), make_product()

    def caller() -> None:
        Stock.objects.filter(pk=other.pk).update(quantity=5)
        hot_write(bump(hot.pk, refuse=True), key=hot.pk)

    with pytest.raises(Refused):
        run_in_transaction(caller)
    assert Stock.objects.get(pk=other.pk).quantity == 10
    assert Stock.objects.get(pk=hot.pk).version == 0


def test_a_caller_that_catches_refusals_gets_them_from_the_nested_use_case_and_goes_on():
    hot, other = make_product(), make_product()

    @use_case
    def reserve() -> None:
        Stock.objects.filter(pk=other.pk).update(quantity=7)  # undone with the savepoint
        hot_write(bump(hot.pk, refuse=True), key=hot.pk)

    def consumer() -> str:
        try:
            reserve()
        except Refused:
            Stock.objects.filter(pk=other.pk).update(quantity=3)  # the caller records the refusal
            return "refused"
        return "reserved"

    assert run_in_transaction(consumer, catches_refusals=True) == "refused"
    assert (Stock.objects.get(pk=other.pk).quantity, Stock.objects.get(pk=hot.pk).version) == (3, 0)


def test_outside_a_transaction_a_hot_write_runs_at_once():
    hot = make_product()
    hot_write(bump(hot.pk), key=hot.pk)
    assert Stock.objects.get(pk=hot.pk).version == 999
