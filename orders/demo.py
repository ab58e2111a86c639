"""`/demo/flash-sale/`: a plain HTML + JavaScript storefront page for the queued checkout."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import render
from django.views.decorators.http import require_GET

from shop.models import Product


@require_GET
def flash_sale_demo(request):
    products = Product.objects.filter(is_flash_sale=True, status=Product.Status.ACTIVE).order_by("pk")[:20]
    return render(request, "demo/flash_sale.html", {"products": products, "sse_url": settings.SSE_PUBLIC_URL})
