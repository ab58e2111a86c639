"""The API's one request parser: JSON via orjson, with a body size limit and a nesting limit.

Why not DRF's JSONParser: it reads the whole stream whatever its size (Django's
DATA_UPLOAD_MAX_MEMORY_SIZE guards only `request.body`, which DRF does not use) and parses with
the recursive stdlib decoder, which raises RecursionError on deep input. Here:
- the body is refused with 413 PAYLOAD_TOO_LARGE when its Content-Length passes
  API_MAX_BODY_BYTES, and the read itself is capped at that size plus one byte, so a stream
  longer than its header claims is refused too, never read further;
- orjson parses (it refuses depth > 1024 itself, without recursion in Python); our own, much lower
  limit is checked afterwards level by level, and only when the body holds more than
  MAX_JSON_DEPTH opening brackets (two `bytes.count` calls: a typical body never walks).
"""

from __future__ import annotations

import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from common.errors import DomainError

MAX_JSON_DEPTH = 32


class PayloadTooLarge(DomainError):
    code, status = "PAYLOAD_TOO_LARGE", 413
    message = "The request body is too large."


class JsonTooDeep(DomainError):
    code, status = "MALFORMED_JSON", 400
    message = f"The request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels."


def too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than {settings.API_MAX_BODY_BYTES} bytes.")


def nesting_exceeds(value: object, limit: int) -> bool:
    """True when arrays/objects nest deeper than `limit` (`[]` is depth 1). Level by level, without
    recursion, so any depth is safe; about 2 us for a small order body, 18 us for 50 order lines."""
    level = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list = []
        for node in level:
            children = node.values() if type(node) is dict else node
            below += [c for c in children if type(c) is dict or type(c) is list]
        level = below
    return False


class JSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        if request is not None:
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > limit:
                raise too_large()
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise too_large()
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if "depth limit" in str(exc):  # orjson's own limit (1024): the same answer as ours
                raise JsonTooDeep() from None
            raise ParseError("The request body is not valid JSON.") from exc
        if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and nesting_exceeds(data, MAX_JSON_DEPTH):
            raise JsonTooDeep()
        return data
