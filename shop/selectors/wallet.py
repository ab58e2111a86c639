"""Points wallet reads: the balance and the ledger."""

from __future__ import annotations

from shop.models import PointHistory, PointWallet


def points_balance(*, user_id: int) -> int:
    """The current balance; a user without a wallet has 0."""
    balance = PointWallet.objects.filter(user_id=user_id).values_list("balance", flat=True).first()
    return balance or 0


def points_history(*, user_id: int, last_id: int | None, size: int) -> list[PointHistory]:
    """A cursor page of the user's ledger, newest first (one row more than `size`: see cursor_page)."""
    rows = PointHistory.objects.filter(user_id=user_id).order_by("-pk")
    if last_id is not None:
        rows = rows.filter(pk__lt=last_id)
    return list(rows[: size + 1])
