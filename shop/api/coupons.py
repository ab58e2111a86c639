from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from common.auth import acting_user_id, query_user_id
from common.fields import StrictIntegerField
from common.idempotency import idempotent
from common.pagination import MAX_ID
from common.serializers import Serializer
from shop.models import Coupon, UserCoupon
from shop.selectors.coupons import coupon_list_issuable, user_coupon_display_status, user_coupon_list
from shop.services.coupons import coupon_issue


class CouponOutput(Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    discountType = serializers.ChoiceField(source="discount_type", choices=Coupon.DiscountType.choices)
    discountValue = serializers.IntegerField(source="discount_value", help_text="KRW for FIXED, percent otherwise")
    minimumOrderAmount = serializers.IntegerField(source="minimum_order_amount")
    maxDiscountAmount = serializers.IntegerField(source="max_discount_amount", allow_null=True)
    totalQuantity = serializers.IntegerField(source="total_quantity")
    issuedQuantity = serializers.IntegerField(source="issued_quantity")
    remainingQuantity = serializers.SerializerMethodField()
    validFrom = serializers.DateTimeField(source="valid_from")
    validTo = serializers.DateTimeField(source="valid_to")

    def get_remainingQuantity(self, coupon: Coupon) -> int:  # noqa: N802 - the contract's field name
        return coupon.total_quantity - coupon.issued_quantity


class IssueOutput(Serializer):
    userCouponId = serializers.IntegerField()
    couponId = serializers.IntegerField()
    issuedQuantity = serializers.IntegerField()
    remainingQuantity = serializers.IntegerField()


class UserCouponOutput(Serializer):
    id = serializers.IntegerField()
    couponId = serializers.IntegerField(source="coupon_id")
    name = serializers.CharField(source="coupon.name")
    status = serializers.SerializerMethodField(help_text="ISSUED past the coupon's validity shows as EXPIRED")
    issuedAt = serializers.DateTimeField(source="issued_at")
    usedAt = serializers.DateTimeField(source="used_at", allow_null=True)
    usedOrderId = serializers.IntegerField(source="used_order_id", allow_null=True)

    def get_status(self, user_coupon: UserCoupon) -> str:
        return user_coupon_display_status(user_coupon, now=self.context["now"])


USER_ID_QUERY = OpenApiParameter("userId", int, description="optional; must be the caller (else 403)")


class CouponListView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        responses=CouponOutput(many=True),
        operation_id="coupons_issuable",
        description="Coupons inside their validity window with units left, by id. Public.",
    )
    def get(self, request):
        return Response(CouponOutput(coupon_list_issuable(now=timezone.now()), many=True).data)


class CouponIssueView(APIView):
    throttle_scope = "coupon_issue"

    class Input(Serializer):
        class Meta:
            ref_name = "CouponIssue"  # every view's nested Input would otherwise share one schema name

        couponId = StrictIntegerField(min_value=1, max_value=MAX_ID)
        userId = StrictIntegerField(min_value=1, max_value=MAX_ID, required=False)

    @extend_schema(
        request=Input,
        responses=IssueOutput,
        parameters=[USER_ID_QUERY],
        operation_id="coupons_issue",
        description=(
            "First come, first served; the coupon is in the database when 200 is answered. "
            "409 COUPON_ALREADY_ISSUED, 409 COUPON_SOLD_OUT (also to a holder once the coupon is sold out), "
            "400 COUPON_NOT_ACTIVE, 404 COUPON_NOT_FOUND, 429 RATE_LIMITED (scope coupon_issue)."
        ),
    )
    @idempotent
    def post(self, request):
        query_user_id(request)  # a `userId` in the query or the body must be the caller (else 403)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user_id = acting_user_id(request, data.validated_data.get("userId"))
        issued = coupon_issue(coupon_id=data.validated_data["couponId"], user_id=user_id, now=timezone.now())
        return Response(
            {
                "userCouponId": issued.user_coupon_id,
                "couponId": issued.coupon_id,
                "issuedQuantity": issued.issued_quantity,
                "remainingQuantity": issued.remaining_quantity,
            }
        )


class UserCouponListView(APIView):
    usable_only = False

    @extend_schema(responses=UserCouponOutput(many=True), operation_id="coupons_of_user")
    def get(self, request, user_id: int):
        user_id = acting_user_id(request, user_id)
        now = timezone.now()
        rows = user_coupon_list(user_id=user_id, now=now, usable_only=self.usable_only)
        return Response(UserCouponOutput(rows, many=True, context={"now": now}).data)


class UsableUserCouponListView(UserCouponListView):
    usable_only = True

    @extend_schema(
        responses=UserCouponOutput(many=True),
        operation_id="coupons_of_user_available",
        description="ISSUED, not backing an unpaid order, and inside the coupon's validity window now.",
    )
    def get(self, request, user_id: int):
        return super().get(request, user_id)
