"""The database backend opens transactions with BEGIN and leaves the session in autocommit (real MariaDB)."""

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


def test_a_transaction_is_begin_and_commit_with_the_session_left_in_autocommit():
    assert server_state() == (1, 0)
    with CaptureQueriesContext(connection) as captured:
        with transaction.atomic():
            Category.objects.create(name="begun")
            assert server_state() == (1, 1)  # inside: a real transaction, autocommit untouched
    assert [q["sql"] for q in captured.captured_queries][0] == "BEGIN"
    assert captured.captured_queries[-1]["sql"] == "COMMIT"
    assert server_state() == (1, 0)
    assert Category.objects.filter(name="begun").exists()


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
