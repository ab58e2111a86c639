"""A tiny slow endpoint used to show idempotency under real concurrency."""

import time

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from common.idempotency import idempotent
from shop.models import Category


class SlowCreate(APIView):
    @idempotent
    def post(self, request):
        category = Category.objects.create(name=str(request.data.get("name")))
        time.sleep(float(request.data.get("sleep", 0)))
        if request.data.get("refuse"):
            from common.errors import Conflict

            raise Conflict("refused on purpose")
        return Response({"id": category.pk, "name": category.name}, status=201)


urlpatterns = [path("slow", SlowCreate.as_view())]
