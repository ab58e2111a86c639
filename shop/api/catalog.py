"""Public catalog reads: product list and detail, popular products, sales rankings.

No authentication runs on these views (not even an optional JWT), so a cached answer costs no
database query at all. An old client's `User-Id` header is ignored.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from common.pagination import DEFAULT_SIZE, MAX_ID, MAX_SIZE, bounded_int, cursor_params
from common.serializers import Serializer
from shop.caches import page_payload, popular_payload, product_payload, ranking_payload
from shop.rankings import PERIODS
from shop.selectors.catalog import (
    POPULAR_MAX,
    RANKING_MAX,
    product_get,
    product_page,
    product_popular,
    product_rank_today,
    ranking_list,
)

DEFAULT_LIMIT = 10

BAD_INPUT = OpenApiResponse(description="INVALID_PARAMETER: a query parameter is not an integer in its range.")
NO_PRODUCT = OpenApiResponse(description="PRODUCT_NOT_FOUND: no such product, or it is not ACTIVE.")


class PublicView(APIView):
    """A public, read-only catalog view: no credentials read, no throttle."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes: list = []


# Output serializers document the payloads in the OpenAPI schema. The views render with the
# shop.caches payload functions (the same for a cache hit and a miss, and several times cheaper);
# a test keeps the two in step.


class ProductOutput(Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    price = serializers.IntegerField(help_text="KRW")
    categoryId = serializers.IntegerField(source="category_id")


class PopularOutput(ProductOutput):
    salesCount = serializers.IntegerField(source="sales_count", help_text="quantity sold in the last 3 days")


class ProductPageOutput(Serializer):
    contents = ProductOutput(many=True)
    lastId = serializers.IntegerField(
        source="last_id", allow_null=True, help_text="pass as `lastId` for the next page; null on the last page"
    )


class RankingOutput(Serializer):
    rank = serializers.IntegerField(help_text="1 = best; 0 = did not sell today (own rank only)")
    productId = serializers.IntegerField(source="product_id")
    productName = serializers.CharField(source="product_name")
    salesCount = serializers.IntegerField(source="sales_count")


def int_param(name: str, low: int, high: int, default: int | None, description: str) -> OpenApiParameter:
    return OpenApiParameter(
        name, OpenApiTypes.INT, OpenApiParameter.QUERY, description=f"{description} ({low}..{high})", default=default
    )


def limit_of(request, high: int) -> int:
    limit = bounded_int(request.query_params.get("limit"), name="limit", default=DEFAULT_LIMIT, low=1, high=high)
    assert limit is not None
    return limit


class ProductListView(PublicView):
    @extend_schema(
        operation_id="products_list",
        parameters=[
            int_param("lastId", 0, MAX_ID, None, "the `lastId` of the previous page; omit for the first page"),
            int_param("size", 1, MAX_SIZE, DEFAULT_SIZE, "page size"),
            int_param("categoryId", 1, MAX_ID, None, "only this category"),
        ],
        responses={
            200: ProductPageOutput,
            400: BAD_INPUT,
            404: OpenApiResponse(description="CATEGORY_NOT_FOUND: `categoryId` names no category."),
        },
        description="ACTIVE products by id ascending, after `lastId` (exclusive). Products added while a client "
        "pages appear on a later page; none is skipped or repeated.",
    )
    def get(self, request):
        last_id, size = cursor_params(request.query_params)
        category_id = bounded_int(
            request.query_params.get("categoryId"), name="categoryId", default=None, low=1, high=MAX_ID
        )
        return Response(page_payload(product_page(category_id=category_id, last_id=last_id, size=size)))


class ProductDetailView(PublicView):
    @extend_schema(operation_id="products_get", responses={200: ProductOutput, 404: NO_PRODUCT})
    def get(self, request, product_id: int):
        return Response(product_payload(product_get(product_id=product_id)))


class ProductPopularView(PublicView):
    @extend_schema(
        operation_id="products_popular",
        parameters=[int_param("limit", 1, POPULAR_MAX, DEFAULT_LIMIT, "how many")],
        responses={200: PopularOutput(many=True), 400: BAD_INPUT},
        description="Best sellers of the last 3 days (today included) by quantity in paid orders, best first, "
        "ties by id. Refreshed at least every minute and after every recorded sale.",
    )
    def get(self, request):
        return Response(popular_payload(product_popular(limit=limit_of(request, POPULAR_MAX))))


class ProductRankingView(PublicView):
    @extend_schema(
        operation_id="products_ranking",
        parameters=[
            OpenApiParameter("period", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(PERIODS)),
            int_param("limit", 1, RANKING_MAX, DEFAULT_LIMIT, "how many"),
        ],
        responses={200: RankingOutput(many=True), 400: BAD_INPUT},
        description="`daily`: today; `weekly`: the 7 days ending today; `total`: all time. Best first, ties by "
        "product id; `rank` is the position in this list.",
    )
    def get(self, request, period: str):
        return Response(ranking_payload(ranking_list(period=period, limit=limit_of(request, RANKING_MAX))))


class ProductRankView(PublicView):
    @extend_schema(
        operation_id="products_rank_today",
        responses={200: RankingOutput, 404: NO_PRODUCT},
        description="Today's rank of one product, counted like `/products/ranking/daily`; rank 0 when it has not "
        "sold today.",
    )
    def get(self, request, product_id: int):
        return Response(ranking_payload([product_rank_today(product_id=product_id)])[0])
