"""Django's MySQL/MariaDB backend, pinging a persistent connection only after it sat idle.

`CONN_HEALTH_CHECKS` makes Django ping the server before the first query of every request: a round
trip (0.25 ms on loopback) on every API call that touches the database. A connection used less
than `DB_HEALTH_CHECK_IDLE_SECONDS` ago is trusted instead: if the server went away since, that
request's first query fails, answers 503 DATABASE_UNAVAILABLE with Retry-After (common.api), and
Django closes the broken connection at the end of the request, so the next one reconnects. A
connection idle for longer (the server may have restarted meanwhile) is pinged as before.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db.backends.mysql import base


class DatabaseWrapper(base.DatabaseWrapper):
    _used_at = 0.0

    def create_cursor(self, name=None):
        self._used_at = time.monotonic()
        return super().create_cursor(name)

    def close_if_health_check_failed(self) -> None:
        recent = time.monotonic() - self._used_at < settings.DB_HEALTH_CHECK_IDLE_SECONDS
        if self.connection is not None and not self.health_check_done and recent:
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
