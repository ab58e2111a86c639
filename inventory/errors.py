from common.errors import Conflict


class InsufficientStock(Conflict):
    code, message = "INSUFFICIENT_STOCK", "Not enough stock for this product."
