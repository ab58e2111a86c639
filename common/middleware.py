"""Errors outside DRF views (middleware, plain Django views) still answer in the envelope, and
requests that waited too long before the application could start them are shed."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.http import JsonResponse

from common.api import dependency_error, error_body

log = logging.getLogger(__name__)


class DependencyErrorMiddleware:
    """A database or Redis outage hit outside a DRF view becomes 503 with Retry-After, not a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        dependency = dependency_error(exception)
        if dependency is None:
            return None
        log.warning("dependency unavailable: %s (%s)", dependency.code, exception)
        response = JsonResponse(error_body(dependency.code, dependency.message), status=dependency.status)
        response["Retry-After"] = str(dependency.retry_after or 1)
        return response


OPS_PATHS = ("/healthz", "/readyz", "/metrics")


def queued_seconds(header: str, now: float) -> float | None:
    """How long a request waited since the proxy received it (`X-Request-Start: t=<epoch seconds>`,
    set by nginx with millisecond precision); None when the header is absent or unreadable."""
    value = header[2:] if header.startswith("t=") else header
    try:
        return now - float(value)
    except ValueError:
        return None


class OverloadSheddingMiddleware:
    """Overload: a request that waited longer than OVERLOAD_QUEUE_SECONDS between the proxy and the
    application (queued behind busy threads) is answered at once with 503 OVERLOADED and
    Retry-After, before any work, instead of being served so late that its client has given up. The
    backlog drains in microseconds per shed request, the requests admitted keep a bounded wait, and
    nothing admitted is dropped. Operations paths (health, readiness, metrics) are never shed.
    Without the proxy's `X-Request-Start` header (a direct call) nothing is shed."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        header = request.META.get("HTTP_X_REQUEST_START")
        limit = settings.OVERLOAD_QUEUE_SECONDS
        if header and limit > 0 and not request.path_info.startswith(OPS_PATHS):
            waited = queued_seconds(header, time.time())
            if waited is not None and waited > limit:
                return _overloaded()
        return self.get_response(request)


def _overloaded() -> JsonResponse:
    response = JsonResponse(
        error_body("OVERLOADED", "The server is overloaded and could not start this request in time; retry shortly."),
        status=503,
    )
    response["Retry-After"] = "1"
    return response
