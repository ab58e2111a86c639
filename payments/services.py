"""Payment by points, in ONE transaction (incident 5 made impossible):

lock the order -> check owner, state, expiry, amount -> conditional debit + ledger row ->
coupon USED -> reservations consumed -> order PAID -> payment row -> outbox PaymentCompleted -> the
stock rows (quantity and reserved down), written last, right before COMMIT (the lock order of
`common.db`: the order, its user's rows, the hot stock rows last).

Expiry locks the same order row and re-checks its state under the lock, so exactly one of
payment and expiry wins. Everything else (CONFIRMED, statistics, SSE) follows from the outbox. The event goes to the
`order` aggregate (topic ecommerce.events.order, key = order id) so that it is ordered with the
same order's OrderCancelled/OrderExpired events.
"""

from __future__ import annotations

import secrets

from django.utils import timezone

from common.bulk_sql import insert_instance
from common.db import use_case
from inventory.services import stock_consume
from orders.locks import lock_order
from orders.models import Order, OrderStatus
from orders.state import order_transition
from outbox.services import outbox_enqueue
from payments.errors import AmountMismatch, OrderNotPayable, UnsupportedPaymentMethod
from payments.models import Payment
from shop.services import coupons as coupon_services
from shop.services import wallet as wallet_services


def new_payment_number() -> str:
    return f"P{timezone.localtime():%Y%m%d%H%M%S}{secrets.token_hex(4).upper()}"


@use_case
def payment_process(*, user_id: int, order_id: int, amount: int, method: str = "BALANCE") -> Payment:
    if method != Payment.Method.BALANCE:
        raise UnsupportedPaymentMethod(data={"paymentMethod": method})
    order = lock_order(order_id, user_id=user_id)
    now = timezone.now()
    if order.status != OrderStatus.PENDING_PAYMENT or order.expires_at <= now:
        status = "EXPIRED" if order.status == OrderStatus.PENDING_PAYMENT else order.status
        raise OrderNotPayable(data={"orderId": order.pk, "status": status})
    if amount != order.final_amount:
        raise AmountMismatch(data={"expected": order.final_amount, "actual": amount})

    wallet_services.points_debit(
        user_id=user_id, amount=order.final_amount, order_id=order.pk, description=f"order {order.order_number}"
    )
    if order.user_coupon_id:
        coupon_services.user_coupon_use(order_id=order.pk, now=now)
    reservations = stock_consume(order_id=order.pk)  # the stock rows themselves are written last
    order_transition(order, OrderStatus.PAID, paid_at=now)
    payment = insert_instance(
        Payment(
            payment_number=new_payment_number(), order=order, user_id=user_id, amount=order.final_amount, method=method
        )
    )
    outbox_enqueue(
        aggregate_type="order",
        aggregate_id=order.pk,
        event_type="PaymentCompleted",
        payload={
            "orderId": order.pk,
            "userId": user_id,
            "paymentId": payment.pk,
            "amount": payment.amount,
            "items": [{"productId": r.product_id, "quantity": r.quantity} for r in reservations],
            "paidAt": now.isoformat(),
        },
    )
    return payment


def payment_refund(*, order: Order) -> None:
    """Refund a paid order's points (called by order_cancel, inside its transaction)."""
    payment = Payment.objects.select_for_update().filter(order=order, status=Payment.Status.COMPLETED).first()
    if payment is None:
        return
    wallet_services.points_refund(
        user_id=order.user_id,
        amount=payment.amount,
        order_id=order.pk,
        description=f"refund of order {order.order_number}",
    )
    Payment.objects.filter(pk=payment.pk, status=Payment.Status.COMPLETED).update(
        status=Payment.Status.REFUNDED, refunded_at=timezone.now()
    )
