"""The routes of the ASGI (SSE) process: the event streams and a liveness probe, nothing else.

The admin, the REST API and /metrics are served by the WSGI process only; here every other path is
the JSON 404 envelope, and every error answers in the envelope too (handlers below).
"""

from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from common import health
from orders.flash_stock import flash_stock_stream

urlpatterns = [
    path("api/sse/flash-stock", csrf_exempt(flash_stock_stream), name="sse-flash-stock"),
    path("api/sse/", include("common.sse.urls")),
    path("healthz", csrf_exempt(health.healthz)),
]

handler400 = "common.views.bad_request"
handler403 = "common.views.permission_denied"
handler404 = "common.views.not_found"
handler500 = "common.views.server_error"
