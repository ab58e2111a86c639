from shop.models.cart import Cart, CartItem
from shop.models.catalog import Category, Product, SalesDaily
from shop.models.coupons import Coupon, UserCoupon
from shop.models.users import User
from shop.models.wallet import PointHistory, PointWallet

__all__ = [
    "Cart",
    "CartItem",
    "Category",
    "Coupon",
    "PointHistory",
    "PointWallet",
    "Product",
    "SalesDaily",
    "User",
    "UserCoupon",
]
