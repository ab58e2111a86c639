from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from common.auth import acting_user_id
from common.fields import StrictIntegerField
from common.idempotency import idempotent
from common.pagination import cursor_page, cursor_params
from common.serializers import Serializer
from shop.models import PointHistory
from shop.models.wallet import MAX_BALANCE
from shop.selectors.wallet import points_balance, points_history
from shop.services.wallet import points_charge


class BalanceOutput(Serializer):
    userId = serializers.IntegerField()
    balance = serializers.IntegerField()


class HistoryOutput(Serializer):
    id = serializers.IntegerField()
    amount = serializers.IntegerField(help_text="signed: + CHARGE/REFUND, - USE")
    type = serializers.ChoiceField(choices=PointHistory.Type.choices)
    balanceAfter = serializers.IntegerField(source="balance_after")
    orderId = serializers.IntegerField(source="order_id", allow_null=True)
    description = serializers.CharField()
    createdAt = serializers.DateTimeField(source="created_at")


HistoryPage = inline_serializer(
    "PointHistoryPage",
    {"contents": HistoryOutput(many=True), "lastId": serializers.IntegerField(allow_null=True)},
)
CURSOR_PARAMS = [
    OpenApiParameter("lastId", int, description="exclusive: the `lastId` of the previous page"),
    OpenApiParameter("size", int, description="1..100, default 20"),
]


class BalanceView(APIView):
    @extend_schema(responses=BalanceOutput, operation_id="points_balance", description="No wallet yet: balance 0.")
    def get(self, request, user_id: int):
        user_id = acting_user_id(request, user_id)
        return Response({"userId": user_id, "balance": points_balance(user_id=user_id)})


class ChargeView(APIView):
    class Input(Serializer):
        class Meta:
            ref_name = "PointsCharge"  # every view's nested Input would otherwise share one schema name

        amount = StrictIntegerField(min_value=1, max_value=MAX_BALANCE)
        description = serializers.CharField(max_length=255, allow_blank=True, default="")

    @extend_schema(
        request=Input,
        responses=BalanceOutput,
        operation_id="points_charge",
        description="400 POINT_LIMIT_EXCEEDED when the resulting balance would pass 10,000,000 (nothing changes).",
    )
    @idempotent
    def post(self, request, user_id: int):
        user_id = acting_user_id(request, user_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        balance = points_charge(user_id=user_id, **data.validated_data)
        return Response({"userId": user_id, "balance": balance})


class HistoryView(APIView):
    @extend_schema(parameters=CURSOR_PARAMS, responses=HistoryPage, operation_id="points_histories")
    def get(self, request, user_id: int):
        user_id = acting_user_id(request, user_id)
        last_id, size = cursor_params(request.query_params)
        rows = points_history(user_id=user_id, last_id=last_id, size=size)
        return Response(cursor_page(rows, size, lambda r: r.pk, lambda r: HistoryOutput(r).data))
