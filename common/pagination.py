"""Cursor pages: `?lastId=<id>&size=<1..100>` -> `{"contents": [...], "lastId": id | null}`."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from common.errors import InvalidParameter

T = TypeVar("T")
DEFAULT_SIZE, MAX_SIZE = 20, 100
_ASCII_INT = re.compile(r"-?[0-9]{1,19}")
MAX_ID = 2**62  # the largest id any endpoint accepts (ids above are 400, never a database error)


def bounded_int(raw: Any, *, name: str, default: int | None, low: int, high: int) -> int | None:
    if raw is None or raw == "":
        return default
    text = str(raw)
    if not _ASCII_INT.fullmatch(text):  # `int()` would also take "٥", " 5", "+5" and "5_0"
        raise InvalidParameter(f"{name} must be an integer.")
    value = int(text)
    if not low <= value <= high:
        raise InvalidParameter(f"{name} must be between {low} and {high}.")
    return value


def cursor_params(query) -> tuple[int | None, int]:
    last_id = bounded_int(query.get("lastId"), name="lastId", default=None, low=0, high=MAX_ID)
    size = bounded_int(query.get("size"), name="size", default=DEFAULT_SIZE, low=1, high=MAX_SIZE)
    assert size is not None
    return last_id, size


def cursor_page(rows: Sequence[T], size: int, key: Callable[[T], int], render: Callable[[T], Any]) -> dict:
    """`rows` must hold up to size + 1 items, already ordered; the extra one means another page."""
    page = list(rows[:size])
    has_more = len(rows) > size
    return {"contents": [render(r) for r in page], "lastId": key(page[-1]) if has_more and page else None}
