"""Transactions that retry as a whole when MariaDB reports a lock timeout or a deadlock.

Concurrency policy (see README, "Concurrency policy"):
- the outermost caller owns the transaction; `use_case` opens it and retries it *whole*
  (never a part of it) up to 3 times, sleeping 50/100/150 ms plus jitter;
- nested inside another transaction, `use_case` is a savepoint (a refusal undoes only its own
  work) and does not retry: the error bubbles up to whoever owns the transaction;
- after the last retry the client gets 503 BUSY_RETRY with Retry-After, never a 500.

Lock order, the one rule of every use case (orders/tests/test_lock_order.py reads it from the SQL):
1. the row the use case is about: the order (`orders.locks.lock_order`; expiry: the due orders in
   id order), or the queue consumer's requests in id order;
2. the rows of that order and its user, in this order: the payment, the users' SSE counters (in
   name order), the wallet (in user-id order), the coupon, the order's lines;
3. last, the hot rows every buyer shares: stock rows in product-id order (`inventory.services`),
   held as briefly as possible.
After the stock rows a transaction only inserts new rows and writes rows it already holds. Checkout
has no order row yet: it starts at step 2 with the user's wallet, the per-user lock that serializes
one user's checkouts so that their limits hold (`orders.limits`), then the coupon, and creates the
order.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import OperationalError, connection, transaction

from common.errors import BusyRetry
from common.mysql import is_lock_conflict

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

RETRY_DELAYS = (0.05, 0.10, 0.15)


def run_in_transaction(fn: Callable[[], R], *, retries: bool = True) -> R:
    """Run `fn` in one transaction; retry the whole transaction on lock conflicts."""
    if connection.in_atomic_block:  # nested: a savepoint; the owner of the transaction retries
        with transaction.atomic():
            return fn()
    delays = RETRY_DELAYS if retries else ()
    for attempt in range(len(delays) + 1):
        try:
            with transaction.atomic():
                return fn()
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
