"""User reads."""

from __future__ import annotations

from shop.models import User


def user_get_active(*, user_id: int) -> User | None:
    """The user, unless the account was deleted or deactivated since its token was issued."""
    return User.objects.filter(pk=user_id, is_active=True).first()
