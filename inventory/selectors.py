from __future__ import annotations

from inventory.models import Stock
from shop.errors import ProductNotFound
from shop.models import Product


def stock_view(*, product_id: int) -> dict[str, int]:
    """One query when the stock row exists; a product without one has nothing on hand."""
    row = Stock.objects.filter(product_id=product_id).values_list("quantity", "reserved_quantity").first()
    if row is None:
        if not Product.objects.filter(pk=product_id).exists():
            raise ProductNotFound()
        row = (0, 0)
    quantity, reserved = row
    return {
        "productId": product_id,
        "quantity": quantity,
        "reservedQuantity": reserved,
        "availableQuantity": quantity - reserved,
    }
