"""Queue API: `POST /checkout` and `GET /checkout/status/{requestId}` (every checkout through the queue),
`POST /checkout/queue` and `GET /checkout/queue/{requestId}` (one flash-sale product), `POST /sse/token`."""

from __future__ import annotations

import uuid

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.auth import acting_user_id
from common.fields import StrictIntegerField
from common.idempotency import idempotent
from common.pagination import MAX_ID
from common.serializers import Serializer
from common.sse.views import sse_token_issue, subscribe_url
from orders.api import LineInput, OrderOutput, exactly_one_line_source, line_requests
from orders.queue.admission import queue_request_enqueue
from orders.queue.checkout import CheckoutWanted, checkout_enqueue
from orders.selectors import order_get, queue_request_get
from shop.pricing import MAX_LINES, MAX_QUEUE_QUANTITY


class EnqueuedOutput(Serializer):
    requestId = serializers.UUIDField()
    queuePosition = serializers.IntegerField()
    estimatedWaitSeconds = serializers.IntegerField()


class QueueStatusOutput(Serializer):
    requestId = serializers.UUIDField(source="request_id")
    status = serializers.ChoiceField(choices=["QUEUED", "COMPLETED", "FAILED"])
    productId = serializers.IntegerField(source="product_id", allow_null=True, help_text="null for `POST /checkout`")
    quantity = serializers.IntegerField()
    queuePosition = serializers.IntegerField(source="queue_position")
    orderId = serializers.IntegerField(source="order_id", allow_null=True)
    orderNumber = serializers.CharField(source="order.order_number", allow_null=True, default=None)
    finalAmount = serializers.IntegerField(source="order.final_amount", allow_null=True, default=None)
    errorCode = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")
    completedAt = serializers.DateTimeField(source="completed_at", allow_null=True)

    def get_errorCode(self, row) -> str | None:  # noqa: N802 - the contract's field name
        return row.error_code or None


class CheckoutQueueView(APIView):
    throttle_scope = "queue_enqueue"

    @extend_schema_serializer(component_name="CheckoutQueueInput")  # nested `Input`s share a name
    class Input(Serializer):
        userId = StrictIntegerField(min_value=1, max_value=MAX_ID, required=False)
        productId = StrictIntegerField(min_value=1, max_value=MAX_ID)
        quantity = StrictIntegerField(min_value=1, max_value=MAX_QUEUE_QUANTITY, default=1)

    @extend_schema(
        request=Input,
        responses={202: EnqueuedOutput},
        operation_id="checkout_queue",
        description=(
            "Queue a flash-sale checkout of one product (batched allocation: the fastest path for a flash "
            "sale; `POST /checkout` is the general endpoint for new clients). 202 once the broker acknowledged it; "
            "the result arrives as "
            "`checkout-completed` / `checkout-failed` on `/api/sse/subscribe/{userId}` and from "
            "`GET /checkout/queue/{requestId}`. 404 PRODUCT_NOT_FOUND, 409 NOT_FLASH_SALE_PRODUCT, "
            "409 SOLD_OUT (refused without queueing), 409 PURCHASE_LIMIT_EXCEEDED / TOO_MANY_OPEN_ORDERS / "
            "HELD_UNITS_LIMIT (per-user limits), 409 ALREADY_QUEUED (one live request per user and "
            "product; `data.requestId` names it), 503 QUEUE_UNAVAILABLE (broker down: nothing was queued), "
            "503 CACHE_UNAVAILABLE (Redis down)."
        ),
    )
    @idempotent(atomic=False)
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        user_id = acting_user_id(request, v.get("userId"))
        ticket = queue_request_enqueue(
            user_id=user_id,
            product_id=v["productId"],
            quantity=v["quantity"],
            idempotency_key=request.idempotency_key,  # a retry after a crash finds its request
        )
        payload = {
            "requestId": str(ticket.request.request_id),
            "queuePosition": ticket.request.queue_position,
            "estimatedWaitSeconds": ticket.estimated_wait_seconds,
        }
        return Response(EnqueuedOutput(payload).data, status=status.HTTP_202_ACCEPTED)


class CheckoutQueueStatusView(APIView):
    @extend_schema(
        responses=QueueStatusOutput,
        operation_id="checkout_queue_status",
        description="The caller's own queue request (another user's is 404 QUEUE_REQUEST_NOT_FOUND).",
    )
    def get(self, request, request_id: uuid.UUID):
        return Response(QueueStatusOutput(queue_request_get(user_id=request.user.pk, request_id=request_id)).data)


class SseTokenOutput(Serializer):
    token = serializers.CharField()
    expiresIn = serializers.IntegerField(help_text="seconds during which the token may open a stream")
    subscribeUrl = serializers.CharField()


class SseTokenView(APIView):
    @extend_schema(
        request=None,
        responses=SseTokenOutput,
        operation_id="sse_token",
        description="A short-lived token for `GET /api/sse/subscribe/{userId}?token=` (EventSource "
        "cannot send an Authorization header).",
    )
    def post(self, request):
        user_id = request.user.pk
        token = sse_token_issue(user_id=user_id)
        payload = {"token": token, "expiresIn": settings.SSE_TOKEN_MAX_AGE}
        return Response(SseTokenOutput({**payload, "subscribeUrl": subscribe_url(user_id, token)}).data)


# --- POST /checkout: every checkout through the queue ---------------------------------------------

CHECKOUT_DESCRIPTION = (
    "The checkout a new client should use: direct `items` or `cartItemIds` (exactly one), an optional "
    "`userCouponId`, with the same validation, per-user limits and error codes as `/checkout/initiate`. "
    "The request is queued (Kafka, key `user:<id>` for a cart, `product:<first product id>` for direct "
    "items) and served by the checkout consumer: 200 `mode: QUEUED` with `requestId`, `queuePosition` and "
    "`estimatedWaitSeconds`; the result arrives as `checkout-completed` (with the order) / `checkout-failed` "
    "(with `errorCode`) on `/api/sse/subscribe/{userId}` and from `GET /checkout/status/{requestId}`. "
    "When the broker does not acknowledge in time the same call serves the checkout synchronously: "
    "200 `mode: SYNC_FALLBACK` with the `order` (or the synchronous checkout's own 4xx refusal). "
    "A request with a flash-sale product is never served synchronously: during a broker outage it is "
    "refused with 503 QUEUE_UNAVAILABLE and Retry-After (nothing is queued), so that an outage cannot "
    "send every buyer of a hot product through the row-lock convoy the queue avoids. "
    "409 SOLD_OUT (a flash-sale product flagged sold out, refused without queueing), 409 "
    "TOO_MANY_OPEN_ORDERS / HELD_UNITS_LIMIT / PURCHASE_LIMIT_EXCEEDED (per-user limits), 404 "
    "PRODUCT_NOT_FOUND / CART_ITEM_NOT_FOUND, 409 COUPON_NOT_USABLE. A retry with the same "
    "Idempotency-Key answers the same request whichever path served it."
)


class CheckoutAcceptedOutput(Serializer):
    requestId = serializers.UUIDField(source="request.request_id")
    mode = serializers.ChoiceField(choices=["QUEUED", "SYNC_FALLBACK"], source="request.mode")
    queuePosition = serializers.IntegerField(source="request.queue_position")
    estimatedWaitSeconds = serializers.IntegerField(source="estimated_wait_seconds")
    order = OrderOutput(allow_null=True, help_text="the order, for SYNC_FALLBACK only (null when queued)")


class CheckoutView(APIView):
    @extend_schema_serializer(component_name="CheckoutInput")
    class Input(Serializer):
        userId = StrictIntegerField(min_value=1, max_value=MAX_ID, required=False)
        items = LineInput(many=True, required=False, max_length=MAX_LINES)
        cartItemIds = serializers.ListField(
            child=StrictIntegerField(min_value=1, max_value=MAX_ID), required=False, max_length=MAX_LINES
        )
        userCouponId = StrictIntegerField(min_value=1, max_value=MAX_ID, required=False, allow_null=True)
        deliveryAddress = serializers.CharField(max_length=500, allow_blank=True, required=False, default="")

        def validate(self, attrs):
            return exactly_one_line_source(attrs, "items")

    @extend_schema(
        request=Input,
        responses={200: CheckoutAcceptedOutput},
        operation_id="checkout",
        description=CHECKOUT_DESCRIPTION,
    )
    @idempotent(atomic=False)
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        user_id = acting_user_id(request, v.get("userId"))
        lines = line_requests(v["items"]) if "items" in v else None
        wanted = CheckoutWanted(
            user_id=user_id,
            lines=lines,
            cart_item_ids=v.get("cartItemIds"),
            user_coupon_id=v.get("userCouponId"),
            delivery_address=v["deliveryAddress"],
        )
        ticket = checkout_enqueue(wanted=wanted, idempotency_key=request.idempotency_key)
        order = ticket.order
        answer = {
            "request": ticket.request,
            "estimated_wait_seconds": ticket.estimated_wait_seconds,
            "order": order_get(user_id=user_id, order_id=order.pk) if order is not None else None,
        }
        return Response(CheckoutAcceptedOutput(answer).data)


class CheckoutStatusOutput(Serializer):
    requestId = serializers.UUIDField(source="request_id")
    queuePosition = serializers.IntegerField(source="queue_position")
    status = serializers.ChoiceField(choices=["QUEUED", "COMPLETED", "FAILED"])
    mode = serializers.ChoiceField(choices=["QUEUED", "SYNC_FALLBACK"])
    orderId = serializers.IntegerField(source="order_id", allow_null=True)
    orderNumber = serializers.CharField(source="order.order_number", allow_null=True, default=None)
    finalAmount = serializers.IntegerField(source="order.final_amount", allow_null=True, default=None)
    errorCode = serializers.SerializerMethodField()

    def get_errorCode(self, row) -> str | None:  # noqa: N802 - the contract's field name
        return row.error_code or None


class CheckoutStatusView(APIView):
    @extend_schema(
        responses=CheckoutStatusOutput,
        operation_id="checkout_status",
        description="The caller's own checkout request, from `POST /checkout` or `POST /checkout/queue` "
        "(another user's is 404 QUEUE_REQUEST_NOT_FOUND).",
    )
    def get(self, request, request_id: uuid.UUID):
        return Response(CheckoutStatusOutput(queue_request_get(user_id=request.user.pk, request_id=request_id)).data)
