"""Django's MySQL/MariaDB backend, pinging a persistent connection only after it sat idle, and
opening transactions with BEGIN.

`CONN_HEALTH_CHECKS` makes Django ping the server before the first query of every request: a round
trip (0.25 ms on loopback) on every API call that touches the database. A connection used less
than `DB_HEALTH_CHECK_IDLE_SECONDS` ago is trusted instead: if the server went away since, that
request's first query fails, answers 503 DATABASE_UNAVAILABLE with Retry-After (common.api), and
Django closes the broken connection at the end of the request, so the next one reconnects. A
connection idle for longer (the server may have restarted meanwhile) is pinged as before.

Django opens a transaction by turning autocommit off (`SET autocommit=0`) and closes it with COMMIT
and `SET autocommit=1`: three round trips around every transaction. This backend leaves the
session in autocommit mode and opens the transaction with BEGIN (Django's hook for SQLite,
`_start_transaction_under_autocommit`); COMMIT or ROLLBACK then ends the transaction and the
session is back in autocommit by itself, so turning autocommit back on needs no round trip.
BEGIN is not a round trip of its own either: it travels in front of the transaction's first
statement (`BEGIN;\n<statement>`, one multi-statement query, see below), and a transaction that
ran no statement at all (a refusal decided from Redis, such as a coupon flagged sold out) sends
nothing, neither BEGIN nor its ROLLBACK. One round trip per transaction (its COMMIT) instead of
three. The server takes the transaction's snapshot at its first read either way (BEGIN is not
START TRANSACTION WITH CONSISTENT SNAPSHOT), so isolation, savepoints and `select_for_update` are
unchanged. A batch (`executemany`) still gets its own BEGIN: the driver rewrites a batched INSERT
into one multi-row statement only when the query starts with INSERT.

The commit tail (`defer_to_commit`). A hot row (a stock row every buyer shares) is locked from its
UPDATE until COMMIT. Sent apart, the two are two round trips, and between them the thread must get
the GIL back from the other threads of its worker: under load that gap, not the UPDATE, is how long
the row stays locked. `common.db.hot_update` hands such an UPDATE to the connection instead, and
COMMIT sends it, and any others, with the COMMIT in one multi-statement query (the client flag
MULTI_STATEMENTS): the server runs UPDATE and COMMIT back to back and the lock is held for
server time only. The server stops at the first statement that fails, so a deferred UPDATE must
never fail silently: its guard is a CHECK constraint (an error), not a WHERE clause (0 rows). When
one breaks a constraint, nothing is committed, the transaction is rolled back and the statement's
refusal is kept for `take_commit_refusal` (common.db turns it into the use case's 409).
Every SQL string the project sends is parameterised (the driver escapes the values), so allowing
several statements in one query opens no injection path that a single statement would not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError
from django.db.backends.mysql import base
from django.db.backends.utils import debug_transaction
from MySQLdb.constants import CLIENT

from common.mysql import CHECK_VIOLATION_CODES, error_code

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeferredUpdate:
    """An UPDATE sent with the COMMIT (see the module docstring)."""

    sql: str  # one statement with %s placeholders
    params: tuple
    refused: Callable[[], Exception]  # the error to raise when the statement breaks a CHECK constraint
    expect_rows: int = 1  # rows it must match; fewer is logged (it is already committed by then)


class CursorWrapper(base.CursorWrapper):
    """The driver's cursor, sending the pending BEGIN of its connection's transaction in front of the
    first statement (see the module docstring)."""

    def __init__(self, cursor, db: DatabaseWrapper):
        super().__init__(cursor)
        self.db = db

    def execute(self, query, args=None):
        if not self.db.begin_pending:
            return super().execute(query, args)
        self.db.begin_pending = False
        # `BEGIN;\n` has no placeholder, so the driver's `query % args` formats the statement alone;
        # the first answer is BEGIN's, `nextset` reads the statement's (rows, rowcount, lastrowid)
        # or raises its error, mapped as the parent maps it
        try:
            self.cursor.execute("BEGIN;\n" + query, args)
            self.cursor.nextset()
        except self.db.Database.OperationalError as e:
            if e.args[0] in self.codes_for_integrityerror:
                raise IntegrityError(*tuple(e.args)) from e
            raise
        return self.cursor.rowcount

    def executemany(self, query, args):
        if self.db.begin_pending:
            self.db.send_begin()
        return super().executemany(query, args)


class DatabaseWrapper(base.DatabaseWrapper):
    _used_at = 0.0
    _began = False  # a transaction opened with BEGIN: the session itself stayed in autocommit
    begin_pending = False  # ... whose BEGIN waits for its first statement (the module docstring)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._tail: list[DeferredUpdate] = []
        self._refusal: Callable[[], Exception] | None = None

    def get_connection_params(self):
        params = super().get_connection_params()
        params["client_flag"] = params.get("client_flag", 0) | CLIENT.MULTI_STATEMENTS  # the commit tail
        return params

    def connect(self):
        self._began = False
        self.begin_pending = False
        self._tail = []
        super().connect()

    # --- the commit tail --------------------------------------------------------------------------
    def defer_to_commit(self, update: DeferredUpdate) -> None:
        """Send `update` with this transaction's COMMIT (the module docstring says when that is safe)."""
        self.validate_no_broken_transaction()
        self._tail.append(update)

    def take_commit_refusal(self) -> Callable[[], Exception] | None:
        """The refusal of the deferred UPDATE that made the last COMMIT fail, once."""
        refusal, self._refusal = self._refusal, None
        return refusal

    def _commit(self):
        tail, self._tail = self._tail, []
        if self.begin_pending:
            if not tail:  # no statement ran: there is nothing to commit
                self.begin_pending = False
                return None
            self.send_begin()
        if not tail or self.connection is None:
            return super()._commit()
        sql = ";\n".join(update.sql for update in tail) + ";\nCOMMIT"
        params = tuple(param for update in tail for param in update.params)
        shown = sql % tuple(self.connection.literal(p).decode() for p in params) if self.queries_logged else sql
        with debug_transaction(self, shown), self.wrap_database_errors:
            self._send_tail(tail, sql, params)

    def _send_tail(self, tail: list[DeferredUpdate], sql: str, params: tuple) -> None:
        cursor = self.connection.cursor()
        step = 0
        try:
            cursor.execute(sql, params)
            while step < len(tail):
                wanted, matched = tail[step].expect_rows, cursor.rowcount
                if matched < wanted:  # committed by now: say so loudly
                    log.error("deferred update matched %s rows, not %s: %s", matched, wanted, tail[step].sql)
                step += 1
                cursor.nextset()  # the next statement's result, or its error
        except self.Database.Error as exc:
            if step < len(tail) and error_code(exc) in CHECK_VIOLATION_CODES:
                self._refusal = tail[step].refused
                raise IntegrityError(*exc.args) from exc
            raise
        finally:
            cursor.close()

    def _rollback(self):
        self._tail = []
        if self.begin_pending:  # no statement ran: there is nothing to roll back
            self.begin_pending = False
            return None
        return super()._rollback()

    def _start_transaction_under_autocommit(self):
        self.begin_pending = True  # sent with the first statement (CursorWrapper) or not at all
        self._began = True

    def send_begin(self) -> None:
        """BEGIN as a round trip of its own: before a batch, or before a COMMIT that carries hot updates."""
        self.begin_pending = False
        # wrap_database_errors: a lost connection is django.db's OperationalError (503 in the API), as
        # in Django's own `_set_autocommit`, never the driver's own exception (a 500)
        with debug_transaction(self, "BEGIN"), self.wrap_database_errors:
            self.connection.query("BEGIN")

    def _set_autocommit(self, autocommit):
        if autocommit and self._began:  # COMMIT/ROLLBACK already returned the session to autocommit
            self._began = False
            return
        super()._set_autocommit(autocommit)

    def create_cursor(self, name=None):
        self._used_at = time.monotonic()
        return CursorWrapper(self.connection.cursor(), self)

    def close_if_health_check_failed(self) -> None:
        recent = time.monotonic() - self._used_at < settings.DB_HEALTH_CHECK_IDLE_SECONDS
        if self.connection is not None and not self.health_check_done and recent:
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
