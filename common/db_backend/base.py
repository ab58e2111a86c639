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
session in autocommit mode and sends BEGIN (Django's hook for SQLite,
`_start_transaction_under_autocommit`); COMMIT or ROLLBACK then ends the transaction and the
session is back in autocommit by itself, so turning autocommit back on needs no round trip. Two
round trips instead of three; savepoints, isolation level and `select_for_update` are unchanged.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db.backends.mysql import base
from django.db.backends.utils import debug_transaction


class DatabaseWrapper(base.DatabaseWrapper):
    _used_at = 0.0
    _began = False  # a transaction opened with BEGIN: the session itself stayed in autocommit

    def connect(self):
        self._began = False
        super().connect()

    def _start_transaction_under_autocommit(self):
        # wrap_database_errors: a lost connection is django.db's OperationalError (503 in the API), as
        # in Django's own `_set_autocommit`, never the driver's own exception (a 500)
        with debug_transaction(self, "BEGIN"), self.wrap_database_errors:
            self.connection.query("BEGIN")
        self._began = True

    def _set_autocommit(self, autocommit):
        if autocommit and self._began:  # COMMIT/ROLLBACK already returned the session to autocommit
            self._began = False
            return
        super()._set_autocommit(autocommit)

    def create_cursor(self, name=None):
        self._used_at = time.monotonic()
        return super().create_cursor(name)

    def close_if_health_check_failed(self) -> None:
        recent = time.monotonic() - self._used_at < settings.DB_HEALTH_CHECK_IDLE_SECONDS
        if self.connection is not None and not self.health_check_done and recent:
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
