"""Server-sent events: one channel per user (`user-<id>`), readable only by that user."""

from __future__ import annotations

import logging
from typing import Any

from django_eventstream import send_event
from django_eventstream.channelmanager import DefaultChannelManager

log = logging.getLogger(__name__)


def user_channel(user_id: int) -> str:
    return f"user-{user_id}"


class UserChannelManager(DefaultChannelManager):
    """A user may read only `user-<own id>`."""

    def can_read_channel(self, user, channel: str) -> bool:
        return bool(user is not None and user.is_authenticated and channel == user_channel(user.pk))


def sse_push(user_id: int, event_type: str, data: dict[str, Any]) -> None:
    """Publish an event to the user's channel (stored for Last-Event-ID replay, fanned out by Redis).

    Call it after commit (`transaction.on_commit`), never inside a transaction. A failure is logged,
    not raised: the same result is always readable by polling.
    """
    try:
        send_event(user_channel(user_id), event_type, data)
    except Exception:  # noqa: BLE001 - SSE is a notification; the source of truth is the database
        log.exception("SSE push failed for user %s (%s)", user_id, event_type)
