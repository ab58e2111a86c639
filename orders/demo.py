"""`/demo/flash-sale/`: a plain HTML + JavaScript storefront that shows the whole flash-sale flow.

Sign in, the flash products with their remaining stock live (`/api/sse/flash-stock`), Buy (the queue
position and how many are still ahead, live), the order with its hold countdown, Pay with points,
and the order turning CONFIRMED when the outbox consumer applied the payment (`order-completed` on the
shopper's own stream). Everything it calls is the public API; the page itself holds no state.
"""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import render
from django.views.decorators.http import require_GET

from orders.flash_stock import flash_stock_rows


@require_GET
def flash_sale_demo(request):
    context = {
        "products": flash_stock_rows()[:20],
        "sse_url": settings.SSE_PUBLIC_URL,
        "stock_url": f"{settings.SSE_PUBLIC_URL}/api/sse/flash-stock",
    }
    return render(request, "demo/flash_sale.html", context)
