"""Operator switches (admin): pause/resume a product's processing, wake the consumer, close admission."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from redis.exceptions import RedisError

from common.errors import CacheUnavailable
from common.kafka import OutgoingMessage, ProduceFailed, produce_and_wait, topic
from orders.errors import QueueUnavailable
from orders.models import FlashSaleControl
from orders.queue.keys import QUEUE_TOPIC, queue_key, redis_client

log = logging.getLogger(__name__)


def queue_pause(*, product_id: int) -> None:
    """The consumer leaves this product's requests QUEUED (admission goes on) until resumed."""
    FlashSaleControl.objects.update_or_create(product_id=product_id, defaults={"paused": True})


def queue_resume(*, product_id: int) -> None:
    FlashSaleControl.objects.update_or_create(product_id=product_id, defaults={"paused": False})
    queue_wake(product_id=product_id)


def queue_wake(*, product_id: int) -> None:
    """Ask the consumer to answer every waiting request of the product (after a resume, or for a claim
    whose message never left). Raises QueueUnavailable if the broker does not acknowledge."""
    value = json.dumps({"type": "wake", "productId": product_id}).encode()
    try:
        produce_and_wait(OutgoingMessage(topic(QUEUE_TOPIC), key=f"product:{product_id}", value=value))
    except ProduceFailed as exc:
        raise QueueUnavailable() from exc


def queue_close(*, product_id: int, closed: bool) -> None:
    """Operator sold-out flag: refuse (or admit again) new requests at once, without expiry."""
    key = queue_key("closed", product_id)
    try:
        if closed:
            redis_client().set(key, 1)
        else:
            redis_client().delete(key, queue_key("soldout", product_id))
    except RedisError as exc:
        raise CacheUnavailable() from exc


@dataclass(frozen=True)
class QueueFlags:
    sold_out_flag: bool  # set by the consumer, expires by itself
    closed_flag: bool  # set by an operator
    last_position: int


def queue_flags(product_id: int) -> QueueFlags:
    """The product's Redis flags and last position (all unset when Redis is down)."""
    try:
        soldout, closed, pos = redis_client().mget(
            [queue_key(kind, product_id) for kind in ("soldout", "closed", "pos")]
        )
    except RedisError:
        log.warning("queue: Redis unavailable while reading the flags of product %s", product_id)
        soldout = closed = pos = None
    return QueueFlags(soldout is not None, closed is not None, int(pos or 0))
