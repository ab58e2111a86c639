from __future__ import annotations

from payments.errors import PaymentNotFound
from payments.models import Payment

USER_PAYMENTS_LIMIT = 100


def payment_get(*, user_id: int, payment_id: int) -> Payment:
    """The user's own payment (anyone else's is 404, like an unknown id)."""
    payment = Payment.objects.filter(pk=payment_id, user_id=user_id).first()
    if payment is None:
        raise PaymentNotFound()
    return payment


def payment_list(*, user_id: int) -> list[Payment]:
    """The user's latest payments, newest first."""
    return list(Payment.objects.filter(user_id=user_id).order_by("-pk")[:USER_PAYMENTS_LIMIT])
