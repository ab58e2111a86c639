from common.errors import Conflict, NotFound, ValidationFailed


class OrderNotFound(NotFound):
    code, message = "ORDER_NOT_FOUND", "Order not found."


class OrderNotCancellable(Conflict):
    code, message = "ORDER_NOT_CANCELLABLE", "This order can no longer be cancelled."


class InvalidTransition(Conflict):
    code, message = "INVALID_ORDER_TRANSITION", "The order is not in a state that allows this change."


class InvalidItems(ValidationFailed):
    code, message = "INVALID_ITEMS", "Give exactly one non-empty list of items, each product once."


class InsufficientBalanceAtCheckout(Conflict):
    code, message = "INSUFFICIENT_BALANCE", "Your points balance is below the order amount."
