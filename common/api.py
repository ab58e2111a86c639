"""The response envelope, the one exception handler, and small API helpers shared by every app."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import redis.exceptions
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder as DRFJSONEncoder

from common.errors import (
    BusyRetry,
    CacheUnavailable,
    DatabaseUnavailable,
    DependencyUnavailable,
    DomainError,
)
from common.mysql import LOCK_CONFLICT_CODES, error_code

log = logging.getLogger(__name__)


def error_body(code: str, message: str, data: Any = None) -> dict[str, Any]:
    return {"success": False, "errorCode": code, "errorMessage": message, "data": data}


def dependency_error(exc: BaseException) -> DependencyUnavailable | None:
    """Map an infrastructure exception to the 503 it means, or None if it is not one."""
    if isinstance(exc, DependencyUnavailable):
        return exc
    if isinstance(exc, OperationalError | InterfaceError):
        return BusyRetry() if error_code(exc) in LOCK_CONFLICT_CODES else DatabaseUnavailable()
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return CacheUnavailable()
    return None


def dependency_response(exc: DependencyUnavailable) -> Response:
    response = Response(error_body(exc.code, exc.message, exc.data), status=exc.status)
    response["Retry-After"] = str(exc.retry_after or 1)
    return response


_DRF_CODES: dict[type[drf.APIException], str] = {
    drf.ParseError: "MALFORMED_JSON",
    drf.NotAuthenticated: "UNAUTHORIZED",
    drf.AuthenticationFailed: "UNAUTHORIZED",
    drf.PermissionDenied: "FORBIDDEN",
    drf.NotFound: "NOT_FOUND",
    drf.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    drf.NotAcceptable: "NOT_ACCEPTABLE",
    drf.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
    drf.Throttled: "RATE_LIMITED",
    drf.ValidationError: "INVALID_INPUT",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Turn every exception a view can raise into the error envelope. Unknown ones stay 500."""
    if isinstance(exc, DomainError) and not isinstance(exc, DependencyUnavailable):
        return Response(error_body(exc.code, exc.message, exc.data), status=exc.status)
    dependency = dependency_error(exc)
    if dependency is not None:
        log.warning("dependency unavailable: %s (%s)", dependency.code, exc)
        return dependency_response(dependency)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, DatabaseError):  # e.g. a data error that validation should have caught
        log.exception("database error answered as 400")
        return Response(error_body("INVALID_INPUT", "The request could not be stored."), status=400)
    if not isinstance(exc, drf.APIException):
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "ERROR")
    if isinstance(exc, drf.ValidationError):
        body = error_body(code, _first_message(exc.detail), {"fields": exc.detail})
    elif isinstance(exc, drf.ParseError):
        body = error_body(code, "The request body is not valid JSON.")
    else:
        body = error_body(code, _plain_message(exc.detail))
    response = Response(body, status=exc.status_code)
    if getattr(exc, "auth_header", None):
        response["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None):
        response["Retry-After"] = str(max(1, int(exc.wait)))  # type: ignore[attr-defined] # whole seconds already
    return response


def _plain_message(detail: Any) -> str:
    """One sentence from an exception's detail, never a repr. simplejwt's InvalidToken carries a dict
    (`detail`, `code`, `messages: [{..., message}]`): its most specific `message` is the sentence."""
    if isinstance(detail, dict):
        reasons = [m["message"] for m in detail.get("messages") or [] if isinstance(m, dict) and m.get("message")]
        text = reasons[0] if reasons else detail.get("detail") or next(iter(detail.values()), "")
        return _plain_message(text)
    if isinstance(detail, list):
        return _plain_message(detail[0]) if detail else ""
    text = str(detail).strip()
    return text if not text or text[-1] in ".!?" else f"{text}."


def _first_message(detail: Any, path: str = "") -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            return _first_message(value, f"{path}.{key}" if path else str(key))
    if isinstance(detail, list) and detail:
        return _first_message(detail[0], path)
    prefix = f"{path}: " if path and path != "non_field_errors" else ""
    return f"{prefix}{detail}"


# orjson writes what DRF's JSONRenderer writes with our settings (UTF-8, compact, key order kept,
# U+2028/U+2029 escaped below), several times faster. Datetimes and dataclasses pass through to
# DRF's own encoder (`...Z` for UTC, as before), as do Decimal, lazy strings and the like. Output
# differs only for floats below 1e-4 (`1e-5` vs `1e-05`: the same number; the API has no floats)
# and NaN/Infinity (null instead of a 500). Whatever orjson refuses (non-string keys, as in a
# list field's errors; integers past 64 bits) and an indented answer (`Accept: ...; indent=4`)
# go through DRF's renderer unchanged.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_DRF_DEFAULT = DRFJSONEncoder().default


class EnvelopeRenderer(JSONRenderer):
    """Wraps every successful payload in `{"success": true, "data": ...}`."""

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None):
        renderer_context = renderer_context or {}
        response = renderer_context.get("response")
        if response is not None and response.status_code < 400:
            data = {"success": True, "data": data}
        if (
            data is None
            or self.ensure_ascii
            or not self.compact
            or renderer_context.get("indent")
            or (accepted_media_type and "indent" in accepted_media_type)
        ):
            return super().render(data, accepted_media_type, renderer_context)
        try:
            out = orjson.dumps(data, default=_DRF_DEFAULT, option=_ORJSON_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError
            return super().render(data, accepted_media_type, renderer_context)
        if b"\xe2\x80\xa8" in out or b"\xe2\x80\xa9" in out:  # as DRF: valid JSON, but not JavaScript
            out = out.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
        return out


class OneMediaTypeNegotiation(DefaultContentNegotiation):
    """The API has one renderer (JSON): take it without parsing the Accept header on every request.
    Views with several renderers (the OpenAPI schema) negotiate as usual; the request body's media
    type is still checked (415 for anything but JSON)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        if len(renderers) == 1 and not format_suffix:
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
