"""drf-spectacular glue: unique component names for nested view serializers, and every 2xx body
shown inside the `{success, data}` envelope."""

from __future__ import annotations

from drf_spectacular import openapi


class AutoSchema(openapi.AutoSchema):
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
