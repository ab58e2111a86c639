"""Cart endpoints. Every write answers the whole cart as `GET /cart` shows it (prices are current)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from common.auth import query_user_id
from common.errors import InvalidParameter
from common.fields import StrictBooleanField, StrictIntegerField
from common.idempotency import idempotent
from common.pagination import bounded_int
from common.serializers import Serializer
from shop.pricing import GIFT_WRAP_PRICE, MAX_LINE_QUANTITY, MAX_LINES
from shop.selectors.cart import CartView, cart_get
from shop.services.cart import cart_clear, cart_item_remove, cart_item_set, cart_item_update_quantity


# The answer's schema (drf-spectacular). The answer itself is built by `cart_answer` from plain rows:
# through these serializers a 50-line cart cost several ms of CPU (docs/REPORT.md); a test checks
# that the two agree field by field.
class CartItemOutput(Serializer):
    id = serializers.IntegerField()
    productId = serializers.IntegerField(source="product_id")
    productName = serializers.CharField(source="product_name")
    quantity = serializers.IntegerField()
    unitPrice = serializers.IntegerField(source="unit_price")
    giftWrap = serializers.BooleanField(source="gift_wrap")
    giftMessage = serializers.CharField(source="gift_message")
    lineTotal = serializers.IntegerField(
        source="line_total", help_text=f"unitPrice * quantity + {GIFT_WRAP_PRICE:,} if giftWrap"
    )


class CartOutput(Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="null until the user first writes to the cart")
    userId = serializers.IntegerField(source="user_id")
    items = CartItemOutput(many=True)
    totalItemCount = serializers.IntegerField(source="total_item_count")
    totalQuantity = serializers.IntegerField(source="total_quantity")
    totalPrice = serializers.IntegerField(source="total_price")


USER_ID = OpenApiParameter("userId", int, description="optional; must be the caller (else 403)")
CART_ERRORS = "404 CART_ITEM_NOT_FOUND when the line is not in the caller's cart."


def cart_response(user_id: int) -> Response:
    return cart_answer(cart_get(user_id=user_id))


def cart_answer(view: CartView) -> Response:
    """`CartOutput`, written out."""
    items = [
        {
            "id": line.id,
            "productId": line.product_id,
            "productName": line.product_name,
            "quantity": line.quantity,
            "unitPrice": line.unit_price,
            "giftWrap": line.gift_wrap,
            "giftMessage": line.gift_message,
            "lineTotal": line.line_total,
        }
        for line in view.items
    ]
    return Response(
        {
            "id": view.id,
            "userId": view.user_id,
            "items": items,
            "totalItemCount": len(items),
            "totalQuantity": sum(item["quantity"] for item in items),
            "totalPrice": sum(item["lineTotal"] for item in items),
        }
    )


class CartDetailView(APIView):
    @extend_schema(parameters=[USER_ID], responses=CartOutput, operation_id="cart_get")
    def get(self, request):
        return cart_response(query_user_id(request))

    @extend_schema(parameters=[USER_ID], responses={200: CartOutput}, operation_id="cart_clear")
    def delete(self, request):
        user_id = query_user_id(request)
        cart_clear(user_id=user_id)
        return cart_response(user_id)


class CartItemSetView(APIView):
    class Input(Serializer):
        class Meta:
            ref_name = "CartItemSet"  # every view's nested Input would otherwise share one schema name

        productId = StrictIntegerField(min_value=1, max_value=2**62)
        quantity = StrictIntegerField(min_value=1, max_value=MAX_LINE_QUANTITY)
        giftWrap = StrictBooleanField(default=False)
        giftMessage = serializers.CharField(max_length=500, allow_blank=True, default="")

    @extend_schema(
        parameters=[USER_ID],
        request=Input,
        responses=CartOutput,
        operation_id="cart_item_set",
        description=(
            "Sets the product's line: replaces its quantity and gift options. "
            f"409 CART_FULL when the cart already has {MAX_LINES} lines; 404 PRODUCT_NOT_FOUND; "
            "409 PURCHASE_LIMIT_EXCEEDED for more units of a flash-sale product than one customer may buy."
        ),
    )
    @idempotent
    def post(self, request):
        user_id = query_user_id(request)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        cart = cart_item_set(
            user_id=user_id,
            product_id=v["productId"],
            quantity=v["quantity"],
            gift_wrap=v["giftWrap"],
            gift_message=v["giftMessage"],
        )
        return cart_answer(cart)


class CartItemView(APIView):
    @extend_schema(
        parameters=[
            USER_ID,
            OpenApiParameter("quantity", int, required=True, description=f"0..{MAX_LINE_QUANTITY}; 0 removes"),
        ],
        request=None,
        responses=CartOutput,
        operation_id="cart_item_quantity",
        description=CART_ERRORS,
    )
    def put(self, request, item_id: int):
        user_id = query_user_id(request)
        quantity = bounded_int(
            request.query_params.get("quantity"), name="quantity", default=None, low=0, high=MAX_LINE_QUANTITY
        )
        if quantity is None:
            raise InvalidParameter("quantity is required.")
        cart_item_update_quantity(user_id=user_id, item_id=item_id, quantity=quantity)
        return cart_response(user_id)

    @extend_schema(
        parameters=[USER_ID], responses={200: CartOutput}, operation_id="cart_item_remove", description=CART_ERRORS
    )
    def delete(self, request, item_id: int):
        user_id = query_user_id(request)
        cart_item_remove(user_id=user_id, item_id=item_id)
        return cart_response(user_id)
