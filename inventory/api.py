"""The public stock view of one product (never cached: stock moves with every checkout)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from common.serializers import Serializer
from inventory.selectors import stock_view


class StockOutput(Serializer):
    productId = serializers.IntegerField()
    quantity = serializers.IntegerField(help_text="units on hand (reserved ones included)")
    reservedQuantity = serializers.IntegerField(help_text="units held by unpaid orders")
    availableQuantity = serializers.IntegerField(help_text="quantity - reservedQuantity: what can be bought now")


class ProductStockView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        operation_id="inventory_product_stock",
        responses={200: StockOutput, 404: OpenApiResponse(description="PRODUCT_NOT_FOUND")},
        description="Current stock of any product (active or not), read from the database.",
    )
    def get(self, request, product_id: int):
        return Response(StockOutput(stock_view(product_id=product_id)).data)
