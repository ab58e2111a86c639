"""The database backend opens transactions with BEGIN, sent in front of their first statement, and leaves the
session in autocommit (real MariaDB)."""

import pytest
from django.db import IntegrityError, OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

from common.tests.test_mysql import other_connection
from shop.models import Category
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def server_state() -> tuple[int, int]:
    """(@@autocommit, @@in_transaction) of Django's own session."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@autocommit, @@in_transaction")
        return cursor.fetchone()


def kill_djangos_connection() -> None:
    """End Django's session from another connection, as a server restart would."""
    other = other_connection()
    try:
        with other.cursor() as cursor:
            cursor.execute("KILL %s", [connection.connection.thread_id()])
    finally:
        other.close()


def test_a_transaction_is_begin_with_its_first_statement_and_commit_with_the_session_left_in_autocommit():
    assert server_state() == (1, 0)
    with CaptureQueriesContext(connection) as captured:
        with transaction.atomic():
            category = Category.objects.create(name="begun")
            assert server_state() == (1, 1)  # inside: a real transaction, autocommit untouched
    sql = [q["sql"] for q in captured.captured_queries]
    assert sql[0].startswith("BEGIN;\nINSERT INTO `shop_category`")  # one round trip, not two
    assert "BEGIN" not in sql and sql[-1] == "COMMIT"
    assert category.pk is not None  # the statement's own answer (RETURNING), not BEGIN's
    assert server_state() == (1, 0)
    assert Category.objects.filter(name="begun").exists()


def test_a_transaction_that_runs_no_statement_sends_nothing():
    with CaptureQueriesContext(connection) as captured:
        with transaction.atomic():
            pass
        with pytest.raises(RuntimeError), transaction.atomic():
            raise RuntimeError  # a refusal decided before any statement
    assert captured.captured_queries == []  # neither BEGIN nor COMMIT or ROLLBACK
    assert server_state() == (1, 0)
    with pytest.raises(RuntimeError), transaction.atomic():  # and the next transaction is one
        Category.objects.create(name="after an empty one")
        raise RuntimeError
    assert not Category.objects.filter(name="after an empty one").exists()


def test_the_first_statement_refused_is_an_integrity_error_and_the_transaction_is_rolled_back():
    existing = Category.objects.create(name="taken")
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:  # a duplicate key, as the transaction's first statement
            cursor.execute("INSERT INTO shop_category (id, name) VALUES (%s, %s)", [existing.pk, "again"])
    assert server_state() == (1, 0)
    assert list(Category.objects.values_list("name", flat=True).filter(pk=existing.pk)) == ["taken"]
    with transaction.atomic():  # the connection goes on
        Category.objects.create(name="next")
    assert Category.objects.filter(name="next").exists()


def test_the_first_statement_reads_its_own_rows_and_counts():
    Category.objects.create(name="one")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM shop_category WHERE name = %s", ["one"])
            assert cursor.fetchall() == (("one",),)
        with connection.cursor() as cursor:
            assert cursor.execute("SELECT 1") == 1  # the second statement: no BEGIN in front
        with connection.cursor() as cursor:
            cursor.execute("UPDATE shop_category SET name = %s WHERE name = %s", ["uno", "one"])
            assert cursor.rowcount == 1


def test_a_batch_as_first_statement_gets_its_own_begin_and_stays_atomic():
    with CaptureQueriesContext(connection) as captured, pytest.raises(RuntimeError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.executemany("INSERT INTO shop_category (name) VALUES (%s)", [("batch 1",), ("batch 2",)])
        raise RuntimeError
    assert captured.captured_queries[0]["sql"] == "BEGIN"
    assert not Category.objects.filter(name__startswith="batch").exists()


def test_a_failed_transaction_leaves_nothing_and_the_next_one_is_a_transaction_again():
    with pytest.raises(RuntimeError), transaction.atomic():
        Category.objects.create(name="rolled back")
        raise RuntimeError
    assert server_state() == (1, 0)
    assert not Category.objects.filter(name="rolled back").exists()
    with pytest.raises(RuntimeError), transaction.atomic():  # a second one is atomic too
        Category.objects.create(name="rolled back too")
        Category.objects.create(name="and this")
        raise RuntimeError
    assert not Category.objects.filter(name__in=["rolled back too", "and this"]).exists()


def test_a_refused_statement_in_a_savepoint_keeps_the_transaction():
    with transaction.atomic():
        user = UserFactory()
        with pytest.raises(IntegrityError), transaction.atomic():
            UserFactory(username=user.username)
        Category.objects.create(name="after the savepoint")
        assert server_state() == (1, 1)
    assert Category.objects.filter(name="after the savepoint").exists()


def test_a_reconnected_session_starts_in_autocommit_and_transactions_still_hold():
    with pytest.raises(OperationalError), transaction.atomic():
        Category.objects.create(name="lost with its connection")
        kill_djangos_connection()
        Category.objects.create(name="never written")
    connection.close()
    assert server_state() == (1, 0)
    assert not Category.objects.filter(name__in=["lost with its connection", "never written"]).exists()
    with pytest.raises(RuntimeError), transaction.atomic():
        Category.objects.create(name="rolled back after reconnecting")
        raise RuntimeError
    assert not Category.objects.filter(name="rolled back after reconnecting").exists()


def test_a_transaction_that_cannot_begin_raises_djangos_database_error():
    """BEGIN on a lost connection is django.db's OperationalError, which the API answers with 503
    DATABASE_UNAVAILABLE; the driver's own exception would be a 500 (the MariaDB-restart fault test
    caught one)."""
    Category.objects.exists()  # the connection is open and recently used: no health check before BEGIN
    kill_djangos_connection()
    with pytest.raises(OperationalError), transaction.atomic():
        Category.objects.create(name="never begun")
    connection.close()
    assert not connection.in_atomic_block
    assert not Category.objects.filter(name="never begun").exists()
