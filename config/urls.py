from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from common import health
from common.ops_access import metrics
from dashboard.urls import urlpatterns as dashboard_urls
from inventory.urls import urlpatterns as inventory_urls
from orders.demo import flash_sale_demo
from orders.flash_stock import flash_stock_stream
from orders.urls import urlpatterns as orders_urls
from payments.urls import urlpatterns as payments_urls
from shop.urls import urlpatterns as shop_urls

api_v1 = [*shop_urls, *inventory_urls, *orders_urls, *payments_urls]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/sse/flash-stock", flash_stock_stream, name="sse-flash-stock"),
    path("api/sse/", include("common.sse.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("metrics", metrics, name="prometheus-django-metrics"),
    path("admin/sale/", include(dashboard_urls)),  # before the admin's catch-all
    path("admin/", admin.site.urls),
    path("demo/flash-sale/", flash_sale_demo, name="demo-flash-sale"),
]

handler400 = "common.views.bad_request"
handler403 = "common.views.permission_denied"
handler404 = "common.views.not_found"
handler500 = "common.views.server_error"
