from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from common.idempotency import idempotent
from common.jwt import ShopTokenRefreshSerializer
from common.serializers import Serializer
from shop.selectors.users import user_get_active
from shop.services.users import user_create


class UserOutput(Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    name = serializers.CharField()


class UserCreateView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_scope = "auth"

    class Input(Serializer):
        username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150)
        email = serializers.EmailField(max_length=254)
        password = serializers.CharField(min_length=8, max_length=128, write_only=True)
        name = serializers.CharField(max_length=100, allow_blank=True, default="")

    @extend_schema(request=Input, responses={201: UserOutput}, operation_id="users_create")
    @idempotent
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_create(**data.validated_data)
        return Response(UserOutput(user).data, status=status.HTTP_201_CREATED)


class MeView(APIView):
    @extend_schema(responses=UserOutput, operation_id="users_me")
    def get(self, request):
        user = user_get_active(user_id=request.user.pk)
        if user is None:
            raise NotAuthenticated("This account no longer exists.")
        return Response(UserOutput(user).data)


class TokenView(TokenObtainPairView):
    throttle_scope = "auth"


class RefreshView(TokenRefreshView):
    throttle_scope = "auth"
    serializer_class = ShopTokenRefreshSerializer
