"""drf-spectacular glue: unique component names for nested view serializers, every 2xx body shown
inside the `{success, data}` envelope, and the error answers every operation can give."""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme, TokenRefreshSerializerExtension
from rest_framework_simplejwt.views import TokenViewBase

ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
ERRORS = {
    "400": (
        "INVALID_INPUT / INVALID_PARAMETER / MALFORMED_JSON (also JSON nested deeper than 32 levels) / "
        "INVALID_IDEMPOTENCY_KEY: the request is not valid (`data.fields` names the fields)."
    ),
    "401": "UNAUTHORIZED: no valid Bearer access token.",
    "403": "FORBIDDEN: a `userId` in the path, query or body names another user.",
    "404": "An id in the path or body names nothing the caller may see (e.g. ORDER_NOT_FOUND, PRODUCT_NOT_FOUND).",
    "409": "The request conflicts with the current state (e.g. INSUFFICIENT_STOCK, ORDER_NOT_PAYABLE).",
    "413": "PAYLOAD_TOO_LARGE: the request body is larger than 1 MB (API_MAX_BODY_BYTES).",
    "422": "IDEMPOTENCY_KEY_REUSED: this Idempotency-Key was used with another body.",
    "429": "RATE_LIMITED: too many requests from this caller; see Retry-After.",
    "503": "DATABASE_UNAVAILABLE / CACHE_UNAVAILABLE / BUSY_RETRY / QUEUE_UNAVAILABLE: retry after Retry-After.",
}


class ShopJWTScheme(SimpleJWTScheme):
    """Our authentication class is simplejwt's Bearer scheme (common.jwt)."""

    target_class = "common.jwt.ShopJWTAuthentication"


class ShopTokenRefreshSerializerExtension(TokenRefreshSerializerExtension):
    target_class = "common.jwt.ShopTokenRefreshSerializer"

    def get_name(self, auto_schema, direction):
        return "TokenRefresh"  # the component simplejwt's own serializer had (spectacular adds "Request")


class AutoSchema(openapi.AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        """Document the error answers the shared machinery can give, so clients (and schemathesis)
        know every status an operation may return; an explicit entry in `@extend_schema` wins."""
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        for status in self._error_statuses(operation):
            responses.setdefault(status, {"description": ERRORS[status]})
        for status, response in responses.items():
            if not str(status).startswith("2") and "content" not in response:
                response["content"] = ERROR_CONTENT
        return operation

    def _error_statuses(self, operation: dict) -> list[str]:
        has_input = bool(operation.get("parameters") or operation.get("requestBody"))
        has_ids = "{" in self.path or "requestBody" in operation
        secured = any(requirement for requirement in operation.get("security", []))
        writes = self.method in ("POST", "PUT", "PATCH", "DELETE")
        wanted = {
            "400": has_input,
            "401": secured or isinstance(self.view, TokenViewBase),  # a token endpoint: wrong credentials
            "403": secured,
            "404": has_ids,
            "409": writes,
            "413": "requestBody" in operation,
            "422": self.method == "POST",
            "429": bool(getattr(self.view, "throttle_scope", None)),
            "503": True,
        }
        return [status for status, needed in wanted.items() if needed]

    def get_serializer_name(self, serializer, direction):
        """`CheckoutInitiateView.Input` -> `CheckoutInitiateInput` (not one shared `Input`)."""
        name = super().get_serializer_name(serializer, direction)
        qualname = type(serializer).__qualname__
        if "." in qualname and name == type(serializer).__name__:
            name = qualname.replace("View.", "").replace(".", "")
        return name


def wrap_in_envelope(result, generator, request, public):
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                if not str(status).startswith("2"):
                    continue
                for media in response.get("content", {}).values():
                    inner = media.get("schema")
                    if inner is None:
                        continue
                    media["schema"] = {
                        "type": "object",
                        "required": ["success", "data"],
                        "properties": {"success": {"type": "boolean", "enum": [True]}, "data": inner},
                    }
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = {
        "type": "object",
        "required": ["success", "errorCode", "errorMessage"],
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "errorCode": {"type": "string"},
            "errorMessage": {"type": "string"},
            "data": {"nullable": True},
        },
    }
    return result
