from common.errors import Conflict, NotFound, ValidationFailed


class PaymentNotFound(NotFound):
    code, message = "PAYMENT_NOT_FOUND", "Payment not found."


class OrderNotPayable(Conflict):
    code, message = "ORDER_NOT_PAYABLE", "This order cannot be paid (expired, cancelled or already paid)."


class AmountMismatch(ValidationFailed):
    code, message = "AMOUNT_MISMATCH", "The amount does not match the order's final amount."


class UnsupportedPaymentMethod(ValidationFailed):
    code, message = "UNSUPPORTED_PAYMENT_METHOD", "Only BALANCE payments are supported."
