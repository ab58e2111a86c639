"""Small helpers of the project's management commands."""

from __future__ import annotations

from django.core.management.base import CommandError


def parse_ids(raw: str, *, option: str = "--ids") -> list[int]:
    """'1-3,9,10' -> [1, 2, 3, 9, 10] (a CommandError naming `option` otherwise)."""
    ids: set[int] = set()
    try:
        for part in filter(None, (p.strip() for p in raw.split(","))):
            low, _, high = part.partition("-")
            ids.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise CommandError(f"{option} looks like 1-3,9,10") from None
    return sorted(ids)
