"""Flash-sale queue API: `POST /checkout/queue`, `GET /checkout/queue/{requestId}`, `POST /sse/token`."""

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
from common.sse.views import sse_token_issue, subscribe_url
from orders.queue.admission import queue_request_enqueue
from orders.selectors import queue_request_get
from shop.pricing import MAX_QUEUE_QUANTITY


class EnqueuedOutput(serializers.Serializer):
    requestId = serializers.UUIDField()
    queuePosition = serializers.IntegerField()
    estimatedWaitSeconds = serializers.IntegerField()


class QueueStatusOutput(serializers.Serializer):
    requestId = serializers.UUIDField(source="request_id")
    status = serializers.ChoiceField(choices=["QUEUED", "COMPLETED", "FAILED"])
    productId = serializers.IntegerField(source="product_id")
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
    class Input(serializers.Serializer):
        userId = StrictIntegerField(min_value=1, max_value=MAX_ID, required=False)
        productId = StrictIntegerField(min_value=1, max_value=MAX_ID)
        quantity = StrictIntegerField(min_value=1, max_value=MAX_QUEUE_QUANTITY, default=1)

    @extend_schema(
        request=Input,
        responses={202: EnqueuedOutput},
        operation_id="checkout_queue",
        description=(
            "Queue a flash-sale checkout. 202 once the broker acknowledged it; the result arrives as "
            "`checkout-completed` / `checkout-failed` on `/api/sse/subscribe/{userId}` and from "
            "`GET /checkout/queue/{requestId}`. 404 PRODUCT_NOT_FOUND, 409 NOT_FLASH_SALE_PRODUCT, "
            "409 SOLD_OUT (refused without queueing), 409 ALREADY_QUEUED (one live request per user and "
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


class SseTokenOutput(serializers.Serializer):
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
