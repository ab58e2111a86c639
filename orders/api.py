from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.auth import acting_user_id, query_user_id
from common.fields import StrictBooleanField, StrictIntegerField
from common.idempotency import idempotent
from common.pagination import MAX_ID, cursor_page, cursor_params
from common.serializers import Serializer
from orders.errors import InvalidItems
from orders.models import Order
from orders.selectors import order_get, order_list
from orders.services import LineRequest, checkout_initiate, order_cancel
from shop.pricing import MAX_LINE_QUANTITY, MAX_LINES


class OrderItemOutput(Serializer):
    productId = serializers.IntegerField(source="product_id")
    productName = serializers.CharField(source="product_name")
    quantity = serializers.IntegerField()
    unitPrice = serializers.IntegerField(source="unit_price")
    giftWrap = serializers.BooleanField(source="gift_wrap")
    giftMessage = serializers.CharField(source="gift_message")
    lineTotal = serializers.IntegerField(source="line_total")


class OrderOutput(Serializer):
    orderId = serializers.IntegerField(source="pk")
    orderNumber = serializers.CharField(source="order_number")
    userId = serializers.IntegerField(source="user_id")
    status = serializers.CharField()
    expiresAt = serializers.DateTimeField(source="expires_at")
    remainingSeconds = serializers.SerializerMethodField()
    totalAmount = serializers.IntegerField(source="total_amount")
    discountAmount = serializers.IntegerField(source="discount_amount")
    finalAmount = serializers.IntegerField(source="final_amount")
    userCouponId = serializers.IntegerField(source="user_coupon_id", allow_null=True)
    deliveryAddress = serializers.CharField(source="delivery_address")
    createdAt = serializers.DateTimeField(source="created_at")
    paidAt = serializers.DateTimeField(source="paid_at", allow_null=True)
    items = OrderItemOutput(many=True, source="lines")

    def get_remainingSeconds(self, order: Order) -> int:  # noqa: N802 - API field name
        if order.status != Order.Status.PENDING_PAYMENT:
            return 0
        return max(0, int((order.expires_at - timezone.now()).total_seconds()))


class LineInput(Serializer):
    productId = StrictIntegerField(min_value=1, max_value=MAX_ID)
    quantity = StrictIntegerField(min_value=1, max_value=MAX_LINE_QUANTITY)
    giftWrap = StrictBooleanField(default=False)
    giftMessage = serializers.CharField(max_length=500, allow_blank=True, default="")


def line_requests(items: list[dict]) -> list[LineRequest]:
    """Validated `LineInput` rows as the checkout use case's lines."""
    return [LineRequest(i["productId"], i["quantity"], i["giftWrap"], i["giftMessage"]) for i in items]


def exactly_one_line_source(attrs: dict, lines_field: str) -> dict:
    """The checkouts' rule for their input: cart lines or direct lines, exactly one of them, not empty."""
    if ("cartItemIds" in attrs) == (lines_field in attrs):
        raise InvalidItems(f"Give exactly one of cartItemIds and {lines_field}.")
    if not attrs.get("cartItemIds", attrs.get(lines_field)):
        raise InvalidItems("The item list must not be empty.")
    return attrs


def _order_response(order: Order, code: int = status.HTTP_200_OK) -> Response:
    """The order as a checkout just created it (no query), or as it is now in the database."""
    if "created_items" not in order.__dict__:
        order = order_get(user_id=order.user_id, order_id=order.pk)
    return Response(OrderOutput(order).data, status=code)


class CheckoutInitiateView(APIView):
    class Input(Serializer):
        userId = StrictIntegerField(min_value=1, max_value=MAX_ID, required=False)
        cartItemIds = serializers.ListField(
            child=StrictIntegerField(min_value=1, max_value=MAX_ID), required=False, max_length=MAX_LINES
        )
        directOrderItems = LineInput(many=True, required=False)
        userCouponId = StrictIntegerField(min_value=1, max_value=MAX_ID, required=False, allow_null=True)
        deliveryAddress = serializers.CharField(max_length=500, allow_blank=True, required=False, default="")

        def validate(self, attrs):
            return exactly_one_line_source(attrs, "directOrderItems")

    @extend_schema(
        request=Input,
        responses=OrderOutput,
        operation_id="checkout_initiate",
        description=(
            "The synchronous checkout: the order in the answer, every time. A new client should prefer "
            "`POST /checkout` (queued, with synchronous failover when the broker is down); this one remains for "
            "clients that need the order at once. 409 TOO_MANY_OPEN_ORDERS / HELD_UNITS_LIMIT / "
            "PURCHASE_LIMIT_EXCEEDED (per-user limits), 409 CART_ITEM_IN_OPEN_ORDER (a cart line backs one live "
            "order), 409 INSUFFICIENT_STOCK, 409 INSUFFICIENT_BALANCE, 409 COUPON_NOT_USABLE."
        ),
    )
    @idempotent
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        user_id = acting_user_id(request, v.get("userId"))
        direct = line_requests(v["directOrderItems"]) if "directOrderItems" in v else None
        order = checkout_initiate(
            user_id=user_id,
            cart_item_ids=v.get("cartItemIds"),
            direct_items=direct,
            user_coupon_id=v.get("userCouponId"),
            delivery_address=v["deliveryAddress"],
        )
        return _order_response(order)


class OrdersView(APIView):
    """`POST /orders` (old clients: the same use case as a direct checkout) and `GET /orders`."""

    class Input(Serializer):
        userId = StrictIntegerField(min_value=1, max_value=MAX_ID, required=False)
        items = LineInput(many=True, allow_empty=False, max_length=MAX_LINES)
        deliveryAddress = serializers.CharField(max_length=500, allow_blank=True, required=False, default="")
        usedCouponIds = serializers.ListField(
            child=StrictIntegerField(min_value=1, max_value=MAX_ID),
            required=False,
            max_length=1,
            help_text="at most one user-coupon id (userCouponId)",
        )

    @extend_schema(request=Input, responses={201: OrderOutput}, operation_id="orders_create")
    @idempotent
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        user_id = acting_user_id(request, v.get("userId"))
        coupons = v.get("usedCouponIds") or []
        order = checkout_initiate(
            user_id=user_id,
            direct_items=line_requests(v["items"]),
            user_coupon_id=coupons[0] if coupons else None,
            delivery_address=v["deliveryAddress"],
        )
        return _order_response(order, status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("userId", int), OpenApiParameter("lastId", int), OpenApiParameter("size", int)],
        responses=inline_serializer(
            "OrderPage", {"contents": OrderOutput(many=True), "lastId": serializers.IntegerField(allow_null=True)}
        ),
        operation_id="orders_list",
    )
    def get(self, request):
        user_id = query_user_id(request)
        last_id, size = cursor_params(request.query_params)
        rows = order_list(user_id=user_id, last_id=last_id, size=size)
        return Response(cursor_page(rows, size, key=lambda o: o.pk, render=lambda o: OrderOutput(o).data))


class OrderDetailView(APIView):
    @extend_schema(responses=OrderOutput, operation_id="orders_get")
    def get(self, request, order_id: int):
        return Response(OrderOutput(order_get(user_id=request.user.pk, order_id=order_id)).data)


class OrderCancelView(APIView):
    class Input(Serializer):
        userId = StrictIntegerField(min_value=1, max_value=MAX_ID, required=False)
        reason = serializers.CharField(max_length=255, allow_blank=True, required=False, default="")

    @extend_schema(request=Input, responses=OrderOutput, operation_id="orders_cancel")
    @idempotent
    def post(self, request, order_id: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user_id = acting_user_id(request, data.validated_data.get("userId"))
        order = order_cancel(order_id=order_id, user_id=user_id, reason=data.validated_data["reason"])
        return _order_response(order)


@extend_schema_view(post=extend_schema(operation_id="checkout_cancel"))
class CheckoutCancelView(OrderCancelView):
    """`POST /checkout/{orderId}/cancel`: the same use case under the checkout path."""
