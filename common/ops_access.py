"""Who may read operational details: `/metrics` and the checks behind `/readyz`.

Allowed: a request from the loopback when METRICS_ALLOW_LOOPBACK (the client's address as the
throttles see it: `REMOTE_ADDR`, or behind NUM_PROXIES proxies the address the outermost one saw, so
nginx on the same host does not make every client "loopback"), or one that carries
`Authorization: Bearer <METRICS_TOKEN>` when a token is
set (compared in constant time). Prometheus on the same host uses the first, in docker the second.
"""

from __future__ import annotations

import ipaddress
import secrets

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from common.api import error_body
from common.throttling import client_ip


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def ops_access_allowed(request: HttpRequest) -> bool:
    if settings.METRICS_ALLOW_LOOPBACK and _loopback(client_ip(request)):
        return True
    token = settings.METRICS_TOKEN
    if not token:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), token.encode())


@never_cache
def metrics(request: HttpRequest):
    """django-prometheus's exporter, behind `ops_access_allowed`."""
    from django_prometheus.exports import ExportToDjangoView

    if not ops_access_allowed(request):
        return JsonResponse(
            error_body("FORBIDDEN", "Metrics are readable from the loopback or with the metrics token."), status=403
        )
    return ExportToDjangoView(request)
