"""Points wallet reads: the balance and the ledger."""

from __future__ import annotations

from common.bulk_sql import fetch_one
from shop.models import PointHistory, PointWallet

# Written out, like the cart's reads: a tenth of the event's requests are this one read, and the ORM's
# compilation of it cost more than the query (py-spy at the Black Friday plateau, docs/REPORT.md).
_BALANCE_SQL = f"SELECT `balance` FROM `{PointWallet._meta.db_table}` WHERE `user_id` = %s"


def points_balance(*, user_id: int) -> int:
    """The current balance; a user without a wallet has 0."""
    row = fetch_one(_BALANCE_SQL, [user_id])
    return 0 if row is None else row[0]


def points_history(*, user_id: int, last_id: int | None, size: int) -> list[PointHistory]:
    """A cursor page of the user's ledger, newest first (one row more than `size`: see cursor_page)."""
    rows = PointHistory.objects.filter(user_id=user_id).order_by("-pk")
    if last_id is not None:
        rows = rows.filter(pk__lt=last_id)
    return list(rows[: size + 1])
