"""Transactions that retry as a whole when MariaDB reports a lock timeout or a deadlock.

Concurrency policy (see README, "Concurrency policy"):
- the outermost caller owns the transaction; `use_case` opens it and retries it *whole*
  (never a part of it) up to 3 times, sleeping 50/100/150 ms plus jitter;
- nested inside another transaction, `use_case` does not retry: the error bubbles up to whoever owns
  the transaction (see "Hot writes" below for when it is a savepoint);
- after the last retry the client gets 503 BUSY_RETRY with Retry-After, never a 500.

Lock order, the one rule of every use case (orders/tests/test_lock_order.py reads it from the SQL):
1. the row the use case is about: the order (`orders.locks.lock_order`; expiry: the due orders in
   id order), or the queue consumer's requests in id order;
2. the rows of that order and its user, in this order: the payment, the users' SSE counters (in
   name order), the wallet (in user-id order), the coupon, the order's lines;
3. last, the hot rows every buyer shares: stock rows in product-id order (`inventory.services`),
   held as briefly as possible: they are written through `hot_write`, after everything else.
Checkout has no order row yet: it starts at step 2 with the user's wallet, the per-user lock that
serializes one user's checkouts so that their limits hold (`orders.limits`), then the coupon, and
creates the order.

Hot writes (`hot_write`). A row every buyer shares (a stock row) is locked from its write until
COMMIT, so that write comes last: a service registers it with `hot_write(fn, key=...)` and it runs
when the transaction's own work is done, in key order, right before COMMIT: in an API view that is
after the view built its answer and stored it with the Idempotency-Key, so the hot row is held for
its UPDATE and the COMMIT only. Nested use cases join their caller's transaction without a
savepoint (a refusal aborts the whole transaction anyway). The one kind of caller that catches a
nested use case's refusal and goes on (the queue consumer, recording a refused checkout on its
request row) says so (`catches_refusals=True`): the use cases it calls then run in savepoints and
their hot writes run at the end of their own savepoint, so a refusal they raise (sold out) is still
theirs and is caught where it always was.

Hot updates ride on the COMMIT (`hot_update`). The last statement of a hot write, the UPDATE of
the stock row, is sent with the COMMIT in one round trip when the hot write runs at the end of the
outermost transaction (common/db_backend: "the commit tail"), so the row is locked for the server's
UPDATE and COMMIT only, never while the thread waits for the GIL in between. Its guard is a CHECK
constraint of the row: when it fails, nothing is committed and `run_in_transaction` raises the
update's refusal (InsufficientStock) instead of the IntegrityError. Inside a savepoint the UPDATE
runs at once and its refusal is raised there.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from django.db import IntegrityError, OperationalError, connection, transaction

from common.db_backend.base import DeferredUpdate
from common.errors import BusyRetry
from common.mysql import CHECK_VIOLATION_CODES, error_code, is_lock_conflict

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

RETRY_DELAYS = (0.05, 0.10, 0.15)


@dataclass
class _Scope:
    """One `run_in_transaction` level (the transaction or a nested use case) and its hot writes."""

    catches: bool  # it may catch a nested use case's refusal and go on (it needs their savepoints)
    writes: list[tuple[Any, Callable[[], None]]] = field(default_factory=list)
    outermost: bool = False  # the transaction itself, not a savepoint: its hot updates ride on the COMMIT
    writing: bool = False  # its hot writes are running


_local = threading.local()


def _scopes() -> list[_Scope]:
    if not hasattr(_local, "scopes"):
        _local.scopes = []
    return _local.scopes


def hot_write(fn: Callable[[], None], *, key: Any) -> None:
    """Run `fn`, a write to a row that every buyer shares, as late as the transaction allows (see the
    module docstring); hot writes run in `key` order. Outside `run_in_transaction`: at once."""
    scopes = _scopes()
    if not scopes or not connection.in_atomic_block:
        fn()
        return
    scopes[-1].writes.append((key, fn))


def hot_update(sql: str, params: tuple, *, refused: Callable[[], Exception]) -> None:
    """Inside a hot write: one UPDATE of one hot row, guarded by the row's CHECK constraints (never by
    a WHERE clause: it must match its row). At the end of the outermost transaction it is sent with
    the COMMIT (module docstring); anywhere else it runs now. A broken constraint raises `refused()`."""
    scopes = _scopes()
    if scopes and scopes[-1].writing and scopes[-1].outermost:  # an outermost scope is the only one
        connection.defer_to_commit(DeferredUpdate(sql, tuple(params), refused))
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            matched = cursor.rowcount
    except IntegrityError as exc:
        if error_code(exc) in CHECK_VIOLATION_CODES:
            raise refused() from exc
        raise
    if matched != 1:
        raise RuntimeError(f"a hot update matched {matched} rows: {sql}")


def _scoped(fn: Callable[[], R], *, catches: bool, hand_up: bool, outermost: bool = False) -> R:
    """Run `fn` as one scope; at its end hand its hot writes up to the parent scope, or run them."""
    scopes = _scopes()
    scope = _Scope(catches=catches, outermost=outermost)
    scopes.append(scope)
    try:
        result = fn()
        if hand_up:
            scopes[-2].writes.extend(scope.writes)
        else:
            scope.writing = True
            for _, write in sorted(scope.writes, key=lambda item: item[0]):
                write()
        return result
    finally:
        scopes.pop()


def run_in_transaction(fn: Callable[[], R], *, retries: bool = True, catches_refusals: bool = False) -> R:
    """Run `fn` in one transaction; retry the whole transaction on lock conflicts.

    Nested in another `run_in_transaction` scope that does not catch refusals (the default), `fn`
    joins that transaction: no savepoint (a refusal aborts the whole transaction anyway) and its hot
    writes wait for the end of the enclosing scope. Nested in one that does
    (`catches_refusals=True`: it catches a nested use case's refusal and goes on, like the queue
    consumer recording a refused checkout), or in a plain `transaction.atomic()`, `fn` runs in a
    savepoint that a refusal rolls back, and its hot writes run at its own end."""
    if connection.in_atomic_block:  # nested: the owner of the transaction retries
        scopes = _scopes()
        joins = bool(scopes) and not scopes[-1].catches
        with transaction.atomic(savepoint=not joins):
            return _scoped(fn, catches=catches_refusals, hand_up=joins)
    delays = RETRY_DELAYS if retries else ()
    for attempt in range(len(delays) + 1):
        try:
            with transaction.atomic():
                return _scoped(fn, catches=catches_refusals, hand_up=False, outermost=True)
        except IntegrityError as exc:
            refusal = connection.take_commit_refusal()  # a hot update sent with the COMMIT was refused
            if refusal is None:
                raise
            raise refusal() from exc
        except OperationalError as exc:
            if not is_lock_conflict(exc):
                raise
            if attempt == len(delays):
                log.warning("lock conflict persisted after %d retries: %s", attempt, exc)
                raise BusyRetry() from exc
            time.sleep(delays[attempt] + random.uniform(0, 0.025))
    raise AssertionError("unreachable")


def use_case(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator for a service that owns its transaction (see module docstring)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return run_in_transaction(lambda: fn(*args, **kwargs))

    return wrapper
