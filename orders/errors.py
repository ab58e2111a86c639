from common.errors import Conflict, DependencyUnavailable, NotFound, ValidationFailed
from shop.errors import InsufficientBalance


class OrderNotFound(NotFound):
    code, message = "ORDER_NOT_FOUND", "Order not found."


class OrderNotCancellable(Conflict):
    code, message = "ORDER_NOT_CANCELLABLE", "This order can no longer be cancelled."


class InvalidTransition(Conflict):
    code, message = "INVALID_ORDER_TRANSITION", "The order is not in a state that allows this change."


class InvalidItems(ValidationFailed):
    code, message = "INVALID_ITEMS", "Give exactly one non-empty list of items, each product once."


class InsufficientBalanceAtCheckout(InsufficientBalance):
    """The early refusal at checkout (the wallet's own INSUFFICIENT_BALANCE, worded for a new order)."""

    message = "Your points balance is below the order amount."


# --- Per-user limits (orders/limits.py) -------------------------------------------------------
class TooManyOpenOrders(Conflict):
    """`data = {"limit", "current"}`: unpaid orders the user already has."""

    code, message = "TOO_MANY_OPEN_ORDERS", "You have too many unpaid orders; pay or cancel one first."


class HeldUnitsLimit(Conflict):
    """`data = {"limit", "current", "requested"}`: units in the user's unpaid orders, and this order's."""

    code, message = "HELD_UNITS_LIMIT", "Your unpaid orders already hold too many units; pay or cancel one first."


class CartItemInOpenOrder(Conflict):
    """`data = {"cartItemIds"}`: a cart line backs one live order at a time."""

    code, message = "CART_ITEM_IN_OPEN_ORDER", "This cart line is already in an order; pay or cancel that one."


# --- Flash-sale queue ------------------------------------------------------------------------
class QueueUnavailable(DependencyUnavailable):
    code, message, retry_after = "QUEUE_UNAVAILABLE", "The checkout queue is unavailable; retry shortly.", 2


class SoldOut(Conflict):
    code, message = "SOLD_OUT", "This product is sold out."


class AlreadyQueued(Conflict):
    code, message = "ALREADY_QUEUED", "You already have a queued request for this product."


class NotFlashSaleProduct(Conflict):
    code, message = "NOT_FLASH_SALE_PRODUCT", "This product is not sold through the flash-sale queue."


class QueueRequestNotFound(NotFound):
    code, message = "QUEUE_REQUEST_NOT_FOUND", "Queue request not found."
