from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from common.auth import acting_user_id
from common.fields import StrictIntegerField
from common.idempotency import idempotent
from common.pagination import MAX_ID
from common.serializers import Serializer
from payments.selectors import payment_get, payment_list
from payments.services import payment_process


class PaymentOutput(Serializer):
    id = serializers.IntegerField()
    paymentNumber = serializers.CharField(source="payment_number")
    orderId = serializers.IntegerField(source="order_id")
    userId = serializers.IntegerField(source="user_id")
    amount = serializers.IntegerField()
    paymentMethod = serializers.CharField(source="method")
    status = serializers.CharField()
    createdAt = serializers.DateTimeField(source="created_at")


class PaymentProcessView(APIView):
    class Input(Serializer):
        orderId = StrictIntegerField(min_value=1, max_value=MAX_ID)
        userId = StrictIntegerField(min_value=1, max_value=MAX_ID, required=False)
        amount = StrictIntegerField(min_value=0, max_value=10**12)
        paymentMethod = serializers.CharField(max_length=32, default="BALANCE")

    @extend_schema(request=Input, responses=PaymentOutput, operation_id="payments_process")
    @idempotent
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        user_id = acting_user_id(request, v.get("userId"))
        payment = payment_process(user_id=user_id, order_id=v["orderId"], amount=v["amount"], method=v["paymentMethod"])
        return Response(PaymentOutput(payment).data)


class PaymentDetailView(APIView):
    @extend_schema(responses=PaymentOutput, operation_id="payments_get")
    def get(self, request, payment_id: int):
        return Response(PaymentOutput(payment_get(user_id=request.user.pk, payment_id=payment_id)).data)


class UserPaymentsView(APIView):
    @extend_schema(responses=PaymentOutput(many=True), operation_id="payments_of_user")
    def get(self, request, user_id: int):
        uid = acting_user_id(request, user_id)
        return Response(PaymentOutput(payment_list(user_id=uid), many=True).data)
