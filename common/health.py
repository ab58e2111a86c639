"""`/healthz` (the process is alive) and `/readyz` (database, Redis and the broker answer)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django_redis import get_redis_connection

_admin: AdminClient | None = None
_admin_lock = threading.Lock()


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    get_redis_connection("default").ping()


def _check_kafka() -> None:
    global _admin
    with _admin_lock:
        if _admin is None:
            _admin = AdminClient(
                {"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS, "socket.connection.setup.timeout.ms": 1000}
            )
        admin = _admin
    admin.list_topics(timeout=1.0)


CHECKS: dict[str, Callable[[], None]] = {"database": _check_database, "redis": _check_redis, "kafka": _check_kafka}
# Other apps add warnings (not failures), e.g. relay lag: name -> callable returning a message or None.
WARNINGS: dict[str, Callable[[], str | None]] = {}


def healthz(request):
    return JsonResponse({"success": True, "data": {"status": "ok"}})


def readyz(request):
    """Everyone gets the status code; only the loopback or the metrics token (`common.ops_access`)
    gets which dependency failed, the timings and the warnings."""
    from common.ops_access import ops_access_allowed

    response = _readyz_detailed()
    if response.status_code != 200 and not ops_access_allowed(request):
        minimal = JsonResponse(
            {"success": False, "errorCode": "NOT_READY", "errorMessage": "not ready", "data": None}, status=503
        )
        minimal["Retry-After"] = response["Retry-After"]
        return minimal
    if not ops_access_allowed(request):
        return JsonResponse({"success": True, "data": {"status": "ready"}})
    return response


def _readyz_detailed() -> JsonResponse:
    results: dict[str, dict] = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            check()
            results[name] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", and is named
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        results[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    warnings = {}
    for name, warn in WARNINGS.items():
        try:
            message = warn()
        except Exception as exc:  # noqa: BLE001
            message = f"check failed: {exc}"
        if message:
            warnings[name] = message
    down = [name for name, r in results.items() if not r["ok"]]
    if down:
        body = {
            "success": False,
            "errorCode": "NOT_READY",
            "errorMessage": f"unavailable: {', '.join(down)}",
            "data": {"checks": results, "down": down, "warnings": warnings},
        }
        response = JsonResponse(body, status=503)
        response["Retry-After"] = "2"
        return response
    return JsonResponse({"success": True, "data": {"checks": results, "warnings": warnings}})
