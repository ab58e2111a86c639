"""The one rule for `userId` kept in paths, queries and bodies for old clients."""

from __future__ import annotations

from typing import Any

from common.errors import Forbidden, InvalidParameter


def parse_user_id(raw: Any) -> int | None:
    """None when absent; a positive int otherwise; 400 for anything else."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        return raw
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 18 and int(raw) > 0:
        return int(raw)
    raise InvalidParameter("userId must be a positive integer.")


def acting_user_id(request, claimed: Any = None) -> int:
    """The authenticated user's id. A `userId` the client sent must name that same user (else 403)."""
    user_id = parse_user_id(claimed)
    if user_id is not None and user_id != request.user.pk:
        raise Forbidden()
    return request.user.pk


def query_user_id(request) -> int:
    return acting_user_id(request, request.query_params.get("userId"))
