"""What the project relies on that is particular to MariaDB/MySQL: the server and client error codes
it tells apart (one table), and named (user-level) locks.

The codes arrive as `exc.args[0]` of the driver's errors, whichever driver raised them (Django's
MySQLdb wrappers, or pymysql on the relay's own connections).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import OperationalError, connection

# --- error codes ------------------------------------------------------------------------------

LOCK_WAIT_TIMEOUT = 1205  # ER_LOCK_WAIT_TIMEOUT (innodb_lock_wait_timeout)
DEADLOCK = 1213  # ER_LOCK_DEADLOCK
BINLOG_GONE = 1236  # ER_MASTER_FATAL_ERROR_READING_BINLOG: the binlog file or position is gone
# A CHECK constraint broken by an INSERT or UPDATE (the statement fails; the transaction goes on).
CHECK_VIOLATION_CODES = frozenset({3819, 4025})  # ER_CHECK_CONSTRAINT_VIOLATED (MySQL), ER_CONSTRAINT_FAILED (MariaDB)
# A lock conflict: the whole transaction may be retried (common.db.run_in_transaction).
LOCK_CONFLICT_CODES = frozenset({LOCK_WAIT_TIMEOUT, DEADLOCK})
# The connection is gone: the server is down, restarting or killed the connection. A lock conflict
# is not one of them.
CONNECTION_LOST_CODES = frozenset(
    {
        1053,  # ER_SERVER_SHUTDOWN
        1927,  # ER_CONNECTION_KILLED (MariaDB)
        2002,  # CR_CONNECTION_ERROR (socket)
        2003,  # CR_CONN_HOST_ERROR (TCP)
        2006,  # CR_SERVER_GONE_ERROR
        2013,  # CR_SERVER_LOST
        2055,  # CR_SERVER_LOST_EXTENDED
        4031,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
    }
)


def error_code(exc: BaseException) -> int | None:
    """The MariaDB/MySQL error code a driver error carries, if any."""
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else None


def is_lock_conflict(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and error_code(exc) in LOCK_CONFLICT_CODES


def is_connection_lost(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and error_code(exc) in CONNECTION_LOST_CODES


# --- an UPDATE that answers the value it wrote ------------------------------------------------


def update_returning(sql: str, params: Sequence[Any]) -> int | None:
    """Run one UPDATE whose SET writes a column as `LAST_INSERT_ID(<new value>)`; return that new value,
    or None when no row matched. The server sends LAST_INSERT_ID(expr)'s value back with the UPDATE's
    answer (the driver's `lastrowid`), so the row needs no read after its write: one round trip less
    while its lock is held. The value must be a non-negative integer (LAST_INSERT_ID is unsigned)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.lastrowid if cursor.rowcount else None


# --- named locks ------------------------------------------------------------------------------
# GET_LOCK belongs to the connection that took it: RELEASE_LOCK or the connection's end frees it.
# `conn` is any DB-API connection whose cursor is a context manager (Django's, or pymysql's).


def lock_acquire(name: str, *, wait: float = 0, conn: Any = None) -> bool:
    """Take the named lock on `conn` (default: Django's connection), waiting up to `wait` seconds."""
    return _select_one(conn, "SELECT GET_LOCK(%s, %s)", name[:64], wait) == 1


def lock_release(name: str, *, conn: Any = None) -> None:
    _select_one(conn, "SELECT RELEASE_LOCK(%s)", name[:64])


def lock_held(name: str, *, conn: Any = None) -> bool:
    """Whether `conn` still holds the named lock (it is lost with its connection)."""
    return _select_one(conn, "SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", name[:64]) == 1


@contextmanager
def named_lock(name: str, *, wait: float = 0) -> Iterator[bool]:
    """The named lock on Django's connection for the block; yields whether it was got."""
    acquired = lock_acquire(name, wait=wait)
    try:
        yield acquired
    finally:
        if acquired:
            lock_release(name)


def _select_one(conn: Any, sql: str, *params: Any) -> Any:
    with (conn or connection).cursor() as cursor:
        cursor.execute(sql, list(params))
        row = cursor.fetchone()
    return row[0] if row else None
