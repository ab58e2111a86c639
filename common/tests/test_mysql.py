"""Named locks on the real server: one holder at a time, across connections of any driver."""

import uuid

import pymysql
import pytest
from django.db import connection

from common.mysql import lock_acquire, lock_held, named_lock, update_returning


def other_connection() -> pymysql.Connection:
    db = connection.settings_dict
    return pymysql.connect(
        host=db["HOST"] or "127.0.0.1",
        port=int(db["PORT"] or 3306),
        user=db["USER"],
        password=db["PASSWORD"],
        database=db["NAME"],
        autocommit=True,
    )


@pytest.mark.django_db
def test_a_named_lock_has_one_holder_and_goes_with_its_connection():
    name = f"test-lock:{uuid.uuid4().hex}"
    other = other_connection()
    try:
        assert lock_acquire(name, conn=other)
        assert lock_held(name, conn=other)
        with named_lock(name) as got:
            assert got is False  # held elsewhere: not waited for
        assert not lock_held(name)
    finally:
        other.close()  # its locks go with it
    with named_lock(name, wait=10) as got:  # the server frees it once it has seen the connection end
        assert got is True
        assert lock_held(name)
        assert not lock_acquire(name, conn=(probe := other_connection()))
        probe.close()
    assert not lock_held(name)  # released at the end of the block


@pytest.mark.django_db
def test_an_update_answers_the_value_it_wrote_or_none_when_no_row_matched():
    from shop.models import PointWallet
    from shop.tests.factories import UserFactory

    user = UserFactory()
    PointWallet.objects.update_or_create(user=user, defaults={"balance": 700})
    take = "UPDATE shop_pointwallet SET balance = LAST_INSERT_ID(balance - %s) WHERE user_id = %s AND balance >= %s"
    assert update_returning(take, (300, user.pk, 300)) == 400
    assert update_returning(take, (400, user.pk, 400)) == 0  # zero is a value, not "no row"
    assert update_returning(take, (1, user.pk, 1)) is None  # the guard refused: nothing written
    assert PointWallet.objects.get(user=user).balance == 0
