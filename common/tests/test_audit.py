import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F

from common.audit import audit_invariants
from inventory.models import Stock
from orders.services import LineRequest, checkout_initiate, order_cancel
from orders.tests.helpers import fund, give_coupon, make_product
from payments.services import payment_process
from shop.models import Coupon, PointWallet

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop_state(user, other_user):
    """Paid, cancelled-after-payment, unpaid and cancelled-unpaid orders, with a coupon."""
    fund(user, 500_000)
    fund(other_user, 500_000)
    product = make_product(stock=50, price=10_000)
    user_coupon = give_coupon(user, discount_value=1_000)
    paid = checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 2)], user_coupon_id=user_coupon.pk)
    payment_process(user_id=user.pk, order_id=paid.pk, amount=paid.final_amount)
    refunded = checkout_initiate(user_id=other_user.pk, direct_items=[LineRequest(product.pk, 1)])
    payment_process(user_id=other_user.pk, order_id=refunded.pk, amount=refunded.final_amount)
    order_cancel(order_id=refunded.pk, user_id=other_user.pk)
    checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 3)])
    cancelled = checkout_initiate(user_id=other_user.pk, direct_items=[LineRequest(product.pk, 1)])
    order_cancel(order_id=cancelled.pk, user_id=other_user.pk)
    return {"product": product, "paid": paid, "user": user}


def test_a_consistent_shop_passes_every_check(shop_state, capsys):
    result = audit_invariants()
    assert result.ok, result.report()
    call_command("audit_invariants")
    assert "all invariants hold" in capsys.readouterr().out


@pytest.mark.parametrize(
    "break_it, check",
    [
        (
            lambda s: Stock.objects.filter(pk=s["product"].pk).update(reserved_quantity=F("reserved_quantity") + 1),
            "stock_reserved_matches_reservations",
        ),
        (
            lambda s: Stock.objects.filter(pk=s["product"].pk).update(quantity=F("quantity") - 1),
            None,
        ),  # quantity alone is not derivable without history: must NOT be reported falsely
        (
            lambda s: PointWallet.objects.filter(user=s["user"]).update(balance=F("balance") + 1),
            "wallet_matches_ledger",
        ),
        (lambda s: Coupon.objects.update(issued_quantity=F("issued_quantity") + 1), "coupon_issued_matches"),
        (
            lambda s: _sql("UPDATE orders_order SET status='PENDING_PAYMENT' WHERE id=%s", s["paid"].pk),
            "only_paid_orders_are_debited",
        ),
        (
            lambda s: _sql("DELETE FROM shop_pointhistory WHERE order_id=%s AND type='USE'", s["paid"].pk),
            "paid_orders_have_payment_and_debit",
        ),
        (
            lambda s: _sql("UPDATE inventory_reservation SET status='ACTIVE' WHERE order_id=%s", s["paid"].pk),
            "stock_sold_matches_paid_orders",
        ),
    ],
)
def test_each_breach_is_reported(shop_state, break_it, check):
    break_it(shop_state)
    result = audit_invariants()
    broken = {name for name, rows in result.breaches.items() if rows}
    if check is None:
        assert result.ok, result.report()
        return
    assert check in broken, result.report()
    with pytest.raises(CommandError):
        call_command("audit_invariants")


def _sql(statement, *params):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
