"""One multi-row INSERT (optionally an upsert), and one multi-row UPDATE by primary key, for hot paths
(the checkout consumer's batches, SSE events stored in bulk); and the small helpers of the statements
hot paths write out rather than have the ORM compile (`placeholders`, `fetch_one`, `fetch_all`), and
`insert_instance`, one model instance saved the same way (the hot paths' single rows: the order, the
payment, the ledger row, the issued coupon, every outbox event).

`QuerySet.bulk_create` prepares every value of every row through its field (about 0.2 ms of CPU per
row here): for a batch of 1,000 queued requests (orders, items, reservations, request rows, SSE
events) that was ~1.2 s of Python against ~0.3 s of SQL, far below the consumer's target of
2,000 orders/s. `insert_rows` builds the same statement from model instances (so field defaults
still apply), converting each distinct datetime once and passing plain values straight to the
driver. It does not fetch generated keys (MySQL has no INSERT ... RETURNING): read them back by a
unique column.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import connection, models
from django.db.models.constants import OnConflict
from django.utils import timezone

_PLAIN = (int, str, float, type(None))  # bool is an int
M = TypeVar("M", bound=models.Model)


def placeholders(values: Sequence[Any]) -> str:
    """`%s, %s, ...`, one per value: the inside of an `IN (...)` or of a row."""
    return ", ".join(["%s"] * len(values))


def fetch_one(sql: str, params: Sequence[Any]) -> tuple | None:
    """The first row of a written-out query, or None."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def fetch_all(sql: str, params: Sequence[Any]) -> list[tuple]:
    """Every row of a written-out query."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def insert_rows(objs: Sequence[models.Model], *, update_fields: Sequence[str] = ()) -> None:
    """INSERT the instances (all of one model) in one statement; with `update_fields`, rows whose
    primary or unique key exists are updated instead (ON DUPLICATE KEY UPDATE those columns)."""
    if not objs:
        return
    sql, params = _insert_statement(objs, update_fields)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def insert_instance(obj: M) -> M:
    """INSERT one instance, as `Model.objects.create` would, and return it saved: its AUTO_INCREMENT
    key set from the statement (`lastrowid`) unless it came with one, its auto_now fields filled.
    `create`'s save machinery cost about 0.1 ms of CPU more per row (docs/REPORT.md). No signals are
    sent: none of ours listens."""
    sql, params = _insert_statement([obj], ())
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if obj.pk is None:
            obj.pk = cursor.lastrowid
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj


def _insert_statement(objs: Sequence[models.Model], update_fields: Sequence[str]) -> tuple[str, list[Any]]:
    meta = objs[0]._meta
    with_pk = getattr(objs[0], meta.pk.attname) is not None
    fields = [
        f
        for f in meta.concrete_fields
        if (with_pk or not f.primary_key)  # let the database number new rows
        and not (f.null and all(getattr(obj, f.attname) is None for obj in objs))  # NULL is the column default
    ]
    now = timezone.now()
    for f in fields:  # what pre_save would do for auto_now / auto_now_add
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            for obj in objs:
                if getattr(obj, f.attname) is None:
                    setattr(obj, f.attname, now)
    prepared: dict[datetime.datetime, Any] = {}

    def db_value(field: models.Field, value: Any) -> Any:
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, datetime.datetime):
            if value not in prepared:
                prepared[value] = connection.ops.adapt_datetimefield_value(value)
            return prepared[value]
        return field.get_db_prep_save(value, connection)

    qn = connection.ops.quote_name
    row_sql = f"({placeholders(fields)})"
    sql = f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) VALUES " + ", ".join(
        [row_sql] * len(objs)
    )
    if update_fields:
        columns = [meta.get_field(name).column for name in update_fields]
        sql += " " + connection.ops.on_conflict_suffix_sql(fields, OnConflict.UPDATE, columns, [])
    return sql, [db_value(f, getattr(obj, f.attname)) for obj in objs for f in fields]


def update_by_pk(model: type[models.Model], pk_values: dict[int, Any], column_field: str, **same: Any) -> int:
    """UPDATE rows by primary key: `column_field` gets a value per row (one CASE), the `same` fields one
    value for all. E.g. link each answered request to its order and mark them all COMPLETED at once."""
    if not pk_values:
        return 0
    meta = model._meta
    qn = connection.ops.quote_name
    pk = qn(meta.pk.column)
    assignments, params = [], []
    for name, value in same.items():
        field = meta.get_field(name)
        assignments.append(f"{qn(field.column)} = %s")
        params.append(None if value is None else field.get_db_prep_save(value, connection))
    case = " ".join(["WHEN %s THEN %s"] * len(pk_values))
    assignments.append(f"{qn(meta.get_field(column_field).column)} = CASE {pk} {case} END")
    for key, value in pk_values.items():
        params += [key, value]
    params += list(pk_values)
    sql = f"UPDATE {qn(meta.db_table)} SET {', '.join(assignments)} WHERE {pk} IN ({placeholders(pk_values)})"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
