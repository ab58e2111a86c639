"""Envelope answers for routes that no DRF view handles."""

from django.http import JsonResponse

from common.api import error_body


def not_found(request, exception=None):
    return JsonResponse(error_body("NOT_FOUND", f"No route for {request.path}."), status=404)


def server_error(request):
    return JsonResponse(error_body("INTERNAL_ERROR", "An unexpected error occurred."), status=500)


def bad_request(request, exception=None):
    return JsonResponse(error_body("BAD_REQUEST", "The request could not be understood."), status=400)


def permission_denied(request, exception=None):
    return JsonResponse(error_body("FORBIDDEN", "Forbidden."), status=403)
