from common.errors import Conflict, DomainError, NotFound, ValidationFailed
from shop.pricing import MAX_LINES


class UsernameTaken(Conflict):
    code, message = "USERNAME_TAKEN", "This username is already taken."


class UserNotFound(NotFound):
    code, message = "USER_NOT_FOUND", "User not found."


class WeakPassword(ValidationFailed):
    code, message = "WEAK_PASSWORD", "The password is too weak."


class ProductNotFound(NotFound):
    code, message = "PRODUCT_NOT_FOUND", "Product not found."


class CategoryNotFound(NotFound):
    code, message = "CATEGORY_NOT_FOUND", "Category not found."


# --- Points wallet ----------------------------------------------------------------------------
class InvalidAmount(ValidationFailed):
    code, message = "INVALID_AMOUNT", "The amount is not a whole number of points in range."


class InsufficientBalance(Conflict):
    """`data = {"required": amount, "balance": current}`."""

    code, message = "INSUFFICIENT_BALANCE", "The points balance is too low."


class PointLimitExceeded(ValidationFailed):
    """A charge would take the balance above MAX_BALANCE (400, the client asked for too much)."""

    code, message = "POINT_LIMIT_EXCEEDED", "The balance would exceed the maximum of 10,000,000 points."


class RefundLimitExceeded(Conflict):
    """A refund would take the balance above MAX_BALANCE (409: the current state refuses it)."""

    code, message = "POINT_LIMIT_EXCEEDED", "The refund would take the balance above 10,000,000 points."


class OrderAlreadyDebited(Conflict):
    code, message = "ORDER_ALREADY_DEBITED", "Points were already debited for this order."


class OrderAlreadyRefunded(Conflict):
    code, message = "ORDER_ALREADY_REFUNDED", "Points were already refunded for this order."


class RefundExceedsDebit(Conflict):
    code, message = "REFUND_EXCEEDS_DEBIT", "A refund cannot exceed what was debited for the order."


# --- Coupons ----------------------------------------------------------------------------------
class CouponNotFound(NotFound):
    code, message = "COUPON_NOT_FOUND", "Coupon not found."


class CouponNotActive(ValidationFailed):
    code, message = "COUPON_NOT_ACTIVE", "The coupon is outside its validity window."


class CouponSoldOut(Conflict):
    code, message = "COUPON_SOLD_OUT", "The coupon is sold out."


class CouponAlreadyIssued(Conflict):
    code, message = "COUPON_ALREADY_ISSUED", "This coupon was already issued to you."


class CouponNotUsable(Conflict):
    """`data = {"userCouponId": id, "reason": NOT_FOUND | NOT_ISSUED | IN_USE | NOT_YET_VALID | EXPIRED |
    BELOW_MINIMUM, ...}`."""

    code, message = "COUPON_NOT_USABLE", "This coupon cannot be used for this order."


# --- Cart -------------------------------------------------------------------------------------
class CartItemNotFound(NotFound):
    code, message = "CART_ITEM_NOT_FOUND", "Cart item not found."


class CartFull(Conflict):
    code, message = "CART_FULL", f"The cart already holds the maximum number of lines ({MAX_LINES})."


class PurchaseLimitExceeded(Conflict):
    """`data = {"productId", "limit", "current", "requested"}`: units of this flash-sale product the user
    holds or bought (unpaid and paid orders), and the units asked for now (the cart, which counts no
    orders, gives only `productId`, `limit` and `requested`)."""

    code, message = "PURCHASE_LIMIT_EXCEEDED", "This flash-sale product is limited per customer."


__all__ = [
    "DomainError",
    "UsernameTaken",
    "UserNotFound",
    "WeakPassword",
    "ProductNotFound",
    "CategoryNotFound",
    "InvalidAmount",
    "InsufficientBalance",
    "PointLimitExceeded",
    "RefundLimitExceeded",
    "OrderAlreadyDebited",
    "OrderAlreadyRefunded",
    "RefundExceedsDebit",
    "CouponNotFound",
    "CouponNotActive",
    "CouponSoldOut",
    "CouponAlreadyIssued",
    "CouponNotUsable",
    "CartItemNotFound",
    "CartFull",
    "PurchaseLimitExceeded",
]
