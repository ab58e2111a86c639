from django.urls import path

from inventory.api import ProductStockView

urlpatterns = [
    path("inventory/products/<int:product_id>", ProductStockView.as_view(), name="inventory-product-stock"),
]
