"""The outbox's handler registry: event type -> handler, shared by the Kafka consumer, the fallback
and dead-letter replay (`outbox.apply.event_apply` runs them).

The handlers live in the app that owns their effect (`orders/handlers.py`, `shop/handlers.py`) and
register themselves with `@handles`; `load_handlers` imports every installed app's `handlers`
module, the way `common.kafka.load_consumers` finds consumers, so every process that applies events
(consumer, Celery worker, admin replay) holds all of them. This module keeps only the mechanism: the
registry, the handler and publication types and the payload helpers; it imports no domain app.

A handler runs inside the transaction that records its events in the inbox: its database effects
commit with that record or not at all. The consumer applies a chunk of events in one transaction,
and a handler registered with `many=True` receives all the chunk's new events of its type at once
(in delivery order), so that it can write them with a few statements whatever their number; the
others receive one event per call. Either way a handler must give the same result for a list as
for its events one by one (the consumer falls back to one at a time when a chunk fails), and its
effects must not depend on the order of events of *different* types within a chunk (they are
applied type by type). SSE notifications are stored in the same transaction
(`common.sse.notify.sse_notify`); other effects outside the database go in `transaction.on_commit`
(caches), or, when they must not be lost, in a `Publication`: a Kafka message sent after the commit
and recorded in the inbox under its own name, so a failure retries it (at least once; see
`outbox.apply.publications_send`).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import autodiscover_modules

from common.kafka import OutgoingMessage
from outbox.events import Event, MalformedEvent


@dataclass(frozen=True)
class Publication:
    """A follow-up message an event causes, sent after the effect committed, at least once."""

    name: str  # the inbox "consumer" that records it was sent
    build: Callable[[Event], OutgoingMessage]


@dataclass(frozen=True)
class Handler:
    event_type: str
    apply: Callable[[Event], None] | Callable[[list[Event]], None]  # one event, or with `many` a list
    publications: tuple[Publication, ...] = ()
    many: bool = False

    def apply_all(self, events: Sequence[Event]) -> None:
        """Apply these events of this handler's type (inside the caller's transaction)."""
        if self.many:
            self.apply(list(events))  # type: ignore[arg-type]
        else:
            for event in events:
                self.apply(event)  # type: ignore[arg-type]


HANDLERS: dict[str, Handler] = {}


def handles(event_type: str, *, publications: tuple[Publication, ...] = (), many: bool = False):
    """Register the decorated function as the handler of `event_type`; with `many`, it receives a
    list of events (see the module docstring)."""

    def register(fn: Callable) -> Callable:
        if event_type in HANDLERS and HANDLERS[event_type].apply is not fn:
            raise ValueError(f"a handler for {event_type!r} is registered already")
        HANDLERS[event_type] = Handler(event_type, fn, publications, many)
        return fn

    return register


_loaded = threading.Event()


def load_handlers() -> dict[str, Handler]:
    """The registry, complete: every installed app's `handlers` module imported (once per process;
    Django's own `handlers` modules register nothing). Call it before reading HANDLERS: the domain
    handlers are imported only through here."""
    if not _loaded.is_set():
        autodiscover_modules("handlers")
        _loaded.set()
    return HANDLERS


# --- payload helpers ------------------------------------------------------------------------


def field_int(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MalformedEvent(f"{name} missing or not an integer")
    try:
        return int(value)
    except ValueError:
        raise MalformedEvent(f"{name} is not an integer: {value!r}") from None


def items_of(payload: dict[str, Any]) -> list[tuple[int, int]]:
    """[(productId, quantity)] sorted by product id (the lock order), quantities of a product summed."""
    items = payload.get("items") or []
    if not isinstance(items, list):
        raise MalformedEvent("items is not a list")
    totals: dict[int, int] = {}
    for item in items:
        if not isinstance(item, dict):
            raise MalformedEvent("an item is not an object")
        product_id = field_int(item, "productId")
        totals[product_id] = totals.get(product_id, 0) + field_int(item, "quantity")
    return sorted(totals.items())


def local_day(value: Any) -> dt.date:
    """The local calendar day of an ISO timestamp (today if absent)."""
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None:
        return timezone.localdate()
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt.UTC)
    return timezone.localdate(moment)
