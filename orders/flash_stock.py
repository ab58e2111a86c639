"""Live stock of the flash products for every shopper: one public SSE stream, `GET /api/sse/flash-stock`.

Why a ticker in the SSE process rather than an event per stock change: stock moves on many paths
(the queue consumer, synchronous checkout, payment, expiry, cancel, restock) and shoppers only need
the latest figure. Each SSE process that has at least one listener reads the flash products' stock
rows once a second (one indexed query over at most MAX_PRODUCTS rows, plus one Redis MGET for the
queue counters and flags) and hands a `flash-stock` event to its own listeners when a figure changed
(or every KEEPALIVE_SECONDS, so a new listener gets the figures at once); nothing is stored or
published through Redis, and nothing runs while nobody listens. The channel is public: it carries
no user data, so the stream needs no token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from common.sse.storage import UserChannelManager
from common.sse.views import allow_origin, sse_refuse
from orders.queue.keys import queue_key
from shop.models import Product

log = logging.getLogger(__name__)

FLASH_STOCK_CHANNEL = "flash-stock"
MAX_PRODUCTS = 50
TICK_SECONDS = 1.0
KEEPALIVE_SECONDS = 10.0


class ShopChannelManager(UserChannelManager):
    """The user channels (own channel only), plus the public, unstored `flash-stock` channel."""

    def can_read_channel(self, user, channel: str) -> bool:
        return channel == FLASH_STOCK_CHANNEL or super().can_read_channel(user, channel)

    def is_channel_reliable(self, channel: str) -> bool:
        return channel != FLASH_STOCK_CHANNEL  # no storage, no replay: only the latest figure matters


def flash_stock_rows(*, active_only: bool = True) -> list[dict[str, Any]]:
    """The flash products with their stock and queue counters: one query and one Redis MGET.
    `served` counts answered queue requests, so a shopper at position p has p - served - 1 ahead."""
    products = Product.objects.filter(is_flash_sale=True)
    if active_only:
        products = products.filter(status=Product.Status.ACTIVE)
    rows = list(
        products.order_by("pk").values_list("id", "name", "price", "stock__quantity", "stock__reserved_quantity")[
            :MAX_PRODUCTS
        ]
    )
    flags = _queue_flags([row[0] for row in rows])
    found = []
    for product_id, name, price, quantity, reserved in rows:
        soldout, closed, position, served = flags.get(product_id, (None, None, None, None))
        quantity, reserved = quantity or 0, reserved or 0
        found.append(
            {
                "productId": product_id,
                "name": name,
                "price": price,
                "onHand": quantity,
                "reserved": reserved,
                "available": quantity - reserved,
                "soldOutFlag": "operator" if closed else "auto" if soldout else None,
                "lastPosition": int(position or 0),
                "served": int(served or 0),
            }
        )
    return found


def _queue_flags(product_ids: list[int]) -> dict[int, tuple]:
    if not product_ids:
        return {}
    kinds = ("soldout", "closed", "pos", "done")
    keys = [queue_key(kind, product_id) for product_id in product_ids for kind in kinds]
    try:
        values = get_redis_connection("default").mget(keys)
    except RedisError:
        log.warning("flash stock: Redis unavailable, queue counters omitted")
        return {}
    return {pid: tuple(values[i * 4 : i * 4 + 4]) for i, pid in enumerate(product_ids)}


def flash_stock_payload() -> str:
    return json.dumps({"products": flash_stock_rows(), "at": round(time.time(), 3)})


def _read_payload() -> str:
    try:
        return flash_stock_payload()
    finally:
        connection.close()  # a pool thread: do not keep one connection per thread of the executor


class _Ticker:
    """One per SSE process: runs while the channel has listeners (plus a grace period at start)."""

    def __init__(self) -> None:
        self.task: asyncio.Task | None = None
        self.joined_at = 0.0
        self.last: str | None = None
        self.sent_at = 0.0

    def ensure(self) -> None:
        self.joined_at = time.monotonic()
        self.sent_at = 0.0  # the new listener gets the figures at the next tick
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        from django_eventstream.event import Event
        from django_eventstream.views import get_listener_manager

        manager = get_listener_manager()
        while manager.listeners_by_channel.get(FLASH_STOCK_CHANNEL) or time.monotonic() - self.joined_at < 5:
            try:
                payload = await sync_to_async(_read_payload, thread_sensitive=False)()
            except Exception:  # noqa: BLE001 - a database outage: try again next tick
                log.warning("flash stock: could not read the stock", exc_info=True)
                payload = None
            stale = time.monotonic() - self.sent_at > KEEPALIVE_SECONDS
            if payload is not None and (stale or _figures(payload) != _figures(self.last)):
                manager.add_to_queues(FLASH_STOCK_CHANNEL, Event(FLASH_STOCK_CHANNEL, "flash-stock", payload))
                self.last, self.sent_at = payload, time.monotonic()
            await asyncio.sleep(TICK_SECONDS)


def _figures(payload: str | None) -> Any:
    return json.loads(payload)["products"] if payload else None


TICKER = _Ticker()


async def flash_stock_stream(request: HttpRequest) -> HttpResponse:
    """`GET /api/sse/flash-stock`: the public stock stream (ASGI only, like the user streams)."""
    from django_eventstream.views import events

    if request.method != "GET":
        return sse_refuse(request, 405, "METHOD_NOT_ALLOWED", "Only GET is allowed.")
    if not isinstance(request, ASGIRequest):
        return sse_refuse(request, 421, "SSE_WRONG_SERVER", "Event streams are served by the SSE process.")
    request.user = AnonymousUser()  # public channel: never read a session from async code
    TICKER.ensure()
    return allow_origin(events(request, channels=[FLASH_STOCK_CHANNEL]), request)
