"""Points wallet: every balance change is one conditional UPDATE plus its ledger row.

Concurrency policy:
- a change is a single guarded `UPDATE shop_pointwallet SET balance = balance ± amount WHERE user_id = ?
  AND <bound>`; the database evaluates the bound on the latest committed row under the row lock, so
  racing debits can never overdraw and racing charges can never pass MAX_BALANCE (the CHECK constraint
  is the last line of defence);
- the ledger row (`balance_after`: the new balance, which the UPDATE itself answers through
  `LAST_INSERT_ID`, `common.mysql.update_returning`) is written in the same transaction; the unique
  `(order_id, type)` key makes a second debit or refund of one order impossible;
- every function is a `use_case`: on its own it owns a retried transaction; inside the caller's it
  joins it, and a refusal aborts the whole transaction (a savepoint only for a caller that catches
  refusals and goes on: `common.db`).
- the wallet row is updated first and created only when missing (never `INSERT IGNORE` first: its
  shared lock on the existing row would deadlock two racing charges upgrading to an exclusive lock).
"""

from __future__ import annotations

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from common.bulk_sql import insert_instance
from common.db import use_case
from common.mysql import update_returning
from shop.errors import (
    InsufficientBalance,
    InvalidAmount,
    OrderAlreadyDebited,
    OrderAlreadyRefunded,
    PointLimitExceeded,
    RefundExceedsDebit,
    RefundLimitExceeded,
    UserNotFound,
)
from shop.models import PointHistory, PointWallet
from shop.models.wallet import MAX_BALANCE
from shop.selectors.wallet import points_balance


@use_case
def points_charge(*, user_id: int, amount: int, description: str = "") -> int:
    """Add `amount` (1..MAX_BALANCE) and return the new balance; 400 POINT_LIMIT_EXCEEDED above the cap."""
    _require_amount(amount, low=1)
    balance = _add(user_id, amount)
    if balance is None:
        if not _wallet_exists(user_id):
            _wallet_create(user_id)
        balance = _add(user_id, amount)
        if balance is None:
            raise PointLimitExceeded(data=_limit_data(user_id, amount))
    return _record(user_id, amount, PointHistory.Type.CHARGE, balance=balance, order_id=None, description=description)


@use_case
def points_debit(*, user_id: int, amount: int, order_id: int, description: str = "") -> int:
    """Take `amount` for `order_id` and return the new balance.

    409 INSUFFICIENT_BALANCE (`data={"required", "balance"}`) when the balance is too low, 409
    ORDER_ALREADY_DEBITED when this order was debited before. `amount` 0 (an order paid entirely by a
    coupon) is allowed and still writes its ledger row, so "one debit per order" keeps holding.
    """
    _require_amount(amount, low=0)
    balance = _subtract(user_id, amount)
    if balance is None and amount == 0 and not _wallet_exists(user_id):
        _wallet_create(user_id)
        balance = _subtract(user_id, amount)
    if balance is None:
        raise InsufficientBalance(data={"required": amount, "balance": points_balance(user_id=user_id)})
    try:
        return _record(
            user_id, -amount, PointHistory.Type.USE, balance=balance, order_id=order_id, description=description
        )
    except IntegrityError:
        raise OrderAlreadyDebited(data={"orderId": order_id}) from None


@use_case
def points_refund(*, user_id: int, amount: int, order_id: int, description: str = "") -> int:
    """Give back `amount` for `order_id` (a paid order was cancelled) and return the new balance.

    At most one refund per order (409 ORDER_ALREADY_REFUNDED), never more than this user's debit for
    that order (409 REFUND_EXCEEDS_DEBIT). If the refund would take the balance above MAX_BALANCE
    (the user charged up to the cap after paying) it is refused with 409 POINT_LIMIT_EXCEEDED and
    nothing changes: the caller decides (e.g. refuse the cancel, or let an operator settle it).
    """
    _require_amount(amount, low=0)
    debited = (
        PointHistory.objects.filter(order_id=order_id, type=PointHistory.Type.USE, user_id=user_id)
        .values_list("amount", flat=True)
        .first()
    )
    if debited is None or amount > -debited:
        raise RefundExceedsDebit(data={"orderId": order_id, "debited": -(debited or 0), "amount": amount})
    balance = _add(user_id, amount)
    if balance is None:
        raise RefundLimitExceeded(data=_limit_data(user_id, amount))
    try:
        return _record(
            user_id, amount, PointHistory.Type.REFUND, balance=balance, order_id=order_id, description=description
        )
    except IntegrityError:
        raise OrderAlreadyRefunded(data={"orderId": order_id}) from None


def _require_amount(amount: int, *, low: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or not low <= amount <= MAX_BALANCE:
        raise InvalidAmount(f"amount must be an integer in {low}..{MAX_BALANCE}.")


# The guarded balance changes. Each answers the new balance itself (`update_returning`).
_ADD_SQL = (
    "UPDATE `shop_pointwallet` SET `balance` = LAST_INSERT_ID(`balance` + %s), `updated_at` = %s"
    " WHERE `user_id` = %s AND `balance` <= %s"
)
_SUBTRACT_SQL = (
    "UPDATE `shop_pointwallet` SET `balance` = LAST_INSERT_ID(`balance` - %s), `updated_at` = %s"
    " WHERE `user_id` = %s AND `balance` >= %s"
)


def _add(user_id: int, amount: int) -> int | None:
    """The guarded increment: the new balance; None when the wallet is missing or the cap would be passed."""
    return update_returning(_ADD_SQL, (amount, _now(), user_id, MAX_BALANCE - amount))


def _subtract(user_id: int, amount: int) -> int | None:
    """The guarded debit, one UPDATE that matches only while `balance >= amount`: the new balance, or None."""
    return update_returning(_SUBTRACT_SQL, (amount, _now(), user_id, amount))


def _now():
    return connection.ops.adapt_datetimefield_value(timezone.now())


def _wallet_exists(user_id: int) -> bool:
    return PointWallet.objects.filter(user_id=user_id).exists()


def _wallet_create(user_id: int) -> None:
    """Create an empty wallet; a concurrent creator winning the race is fine."""
    try:
        with transaction.atomic():
            PointWallet.objects.create(user_id=user_id, balance=0)
    except IntegrityError:
        if not _wallet_exists(user_id):  # not a duplicate: the user does not exist
            raise UserNotFound() from None


def _limit_data(user_id: int, amount: int) -> dict[str, int]:
    return {"balance": points_balance(user_id=user_id), "amount": amount, "maxBalance": MAX_BALANCE}


def _record(
    user_id: int, signed_amount: int, kind: str, *, balance: int, order_id: int | None, description: str
) -> int:
    """Write the ledger row of a change that left the wallet at `balance`; returns that balance."""
    insert_instance(
        PointHistory(
            user_id=user_id,
            amount=signed_amount,
            type=kind,
            balance_after=balance,
            order_id=order_id,
            description=description[:255],
        )
    )
    return balance
