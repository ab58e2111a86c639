"""Small builders for checkout/payment tests (real rows in the real database)."""

from __future__ import annotations

from inventory.models import Stock
from shop.models import PointHistory, PointWallet, Product, UserCoupon
from shop.tests.factories import CouponFactory, ProductFactory


def make_product(*, stock: int = 10, price: int = 10_000, **kwargs) -> Product:
    product = ProductFactory(price=price, **kwargs)
    Stock.objects.create(product=product, quantity=stock)
    return product


def fund(user, balance: int) -> None:
    PointWallet.objects.update_or_create(user=user, defaults={"balance": balance})
    PointHistory.objects.create(user=user, amount=balance, type="CHARGE", balance_after=balance)


def give_coupon(user, **coupon_kwargs) -> UserCoupon:
    coupon = CouponFactory(issued_quantity=1, **coupon_kwargs)  # issued as coupon_issue would
    return UserCoupon.objects.create(user=user, coupon=coupon)


def stock_of(product) -> tuple[int, int]:
    s = Stock.objects.get(pk=product.pk)
    return s.quantity, s.reserved_quantity


def balance_of(user) -> int:
    wallet = PointWallet.objects.filter(user=user).first()
    return wallet.balance if wallet else 0
