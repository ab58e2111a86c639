"""Errors outside DRF views (middleware, plain Django views) still answer in the envelope."""

from __future__ import annotations

import logging

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
