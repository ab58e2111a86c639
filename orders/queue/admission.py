"""Admission (web): admit in Redis, claim the row, publish the message, withdraw without an ack.

See the package docstring for the protocol (`queue_request_enqueue`, steps 1-4, and retries with an
Idempotency-Key).
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection
from redis.exceptions import RedisError

from common.errors import CacheUnavailable, IdempotencyKeyReused, ValidationFailed
from common.kafka import OutgoingMessage, ProduceFailed, produce_and_wait, topic
from common.sse.push import sse_push_stored
from orders.errors import AlreadyQueued, NotFlashSaleProduct, QueueUnavailable, SoldOut
from orders.limits import user_limits_enforce
from orders.models import QueueRequest, QueueRequestStatus
from orders.queue.keys import QUEUE_TOPIC, count_answered, queue_key, redis_client
from shop.errors import ProductNotFound
from shop.models import Product
from shop.pricing import MAX_QUEUE_QUANTITY

log = logging.getLogger(__name__)

QUEUED = QueueRequestStatus.QUEUED

# KEYS: soldout, closed, pos, done. Returns {-1, 0} when flagged, else {position, answered so far}.
_ADMIT = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return {-1, 0} end
local position = redis.call('INCR', KEYS[3])
return {position, tonumber(redis.call('GET', KEYS[4]) or '0')}
"""


def _admit(product_id: int) -> tuple[int, int]:
    """Refuse a product flagged sold out; else take the next position. Returns (position, ahead)."""
    keys = [queue_key(kind, product_id) for kind in ("soldout", "closed", "pos", "done")]
    try:
        position, answered = redis_client().eval(_ADMIT, len(keys), *keys)
    except RedisError as exc:
        raise CacheUnavailable() from exc
    if position < 0:
        raise SoldOut(data={"productId": product_id})
    return int(position), max(int(position) - int(answered) - 1, 0)


@dataclass(frozen=True)
class QueueTicket:
    request: QueueRequest
    estimated_wait_seconds: int


def queue_request_enqueue(
    *, user_id: int, product_id: int, quantity: int = 1, idempotency_key: str | None = None
) -> QueueTicket:
    """Admit, claim, publish, then push `checkout-queued` (see the module docstring). With an
    `idempotency_key` already stored on a request of this user, answer with that request."""
    if connection.in_atomic_block:
        raise RuntimeError("queue_request_enqueue talks to Kafka and must not run inside a transaction")
    if not 1 <= quantity <= MAX_QUEUE_QUANTITY:
        raise ValidationFailed(f"quantity must be between 1 and {MAX_QUEUE_QUANTITY}.")
    _flash_sale_product(product_id)
    if idempotency_key is not None:
        earlier = request_with_key(user_id, idempotency_key)
        if earlier is not None:
            return _resume(earlier, product_id=product_id, quantity=quantity)
    # a quick refusal without queueing; the consumer's allocation is the authority (orders/limits.py)
    user_limits_enforce(user_id=user_id, lines=[(product_id, quantity)], flash_product_ids=[product_id])
    position, ahead = _admit(product_id)
    try:
        request = _claim(
            user_id=user_id,
            product_id=product_id,
            quantity=quantity,
            position=position,
            idempotency_key=idempotency_key,
        )
    except AlreadyQueued:
        count_answered(product_id)
        raise
    except KeyTaken as taken:  # a concurrent attempt with the same key inserted first
        count_answered(product_id)
        return _resume(taken.request, product_id=product_id, quantity=quantity)
    return _publish(request, ahead=ahead)


def _publish(request: QueueRequest, *, ahead: int) -> QueueTicket:
    """Produce the request's message and wait for the ack (withdraw it without one), then push
    `checkout-queued`."""
    try:
        produce_and_wait(OutgoingMessage(topic(QUEUE_TOPIC), key=request.partition_key, value=_message(request)))
    except ProduceFailed as exc:
        served = queue_request_withdraw(request)
        if served is None:
            count_answered(request.product_id)
            log.warning("queue: request %s withdrawn, broker did not acknowledge: %s", request.request_id, exc)
            raise QueueUnavailable() from exc
        request = served
    wait = math.ceil(ahead / max(settings.QUEUE_ESTIMATED_RATE, 1))
    sse_push_stored(
        request.user_id,
        "checkout-queued",
        {
            "requestId": str(request.request_id),
            "productId": request.product_id,
            "quantity": request.quantity,
            "queuePosition": request.queue_position,
            "estimatedWaitSeconds": wait,
        },
    )
    return QueueTicket(request=request, estimated_wait_seconds=wait)


def request_with_key(user_id: int, idempotency_key: str) -> QueueRequest | None:
    return QueueRequest.objects.filter(user_id=user_id, idempotency_key=idempotency_key).first()


def _resume(earlier: QueueRequest, *, product_id: int, quantity: int) -> QueueTicket:
    """Answer a retry with the request its key already made. Still QUEUED: publish it again (its
    first attempt may have died before producing it). Answered: nothing to do but name it."""
    if (earlier.kind, earlier.product_id, earlier.quantity) != (QueueRequest.Kind.PRODUCT, product_id, quantity):
        raise IdempotencyKeyReused()  # the key named another request (its stored answer expired)
    log.info("queue: request %s (%s) retried with its Idempotency-Key", earlier.request_id, earlier.status)
    if earlier.status != QUEUED:
        return QueueTicket(request=earlier, estimated_wait_seconds=0)
    return _publish(earlier, ahead=_ahead(earlier))


def _ahead(request: QueueRequest) -> int:
    """How many requests are still ahead of a queued one (0 if Redis cannot tell)."""
    try:
        answered = int(redis_client().get(queue_key("done", request.product_id)) or 0)
    except RedisError:
        return 0
    return max(request.queue_position - answered - 1, 0)


def _flash_sale_product(product_id: int) -> Product:
    product = Product.objects.filter(pk=product_id).only("id", "status", "is_flash_sale").first()
    if product is None or product.status != Product.Status.ACTIVE:
        raise ProductNotFound(data={"productId": product_id})
    if not product.is_flash_sale:
        raise NotFlashSaleProduct(data={"productId": product_id})
    return product


class KeyTaken(Exception):
    def __init__(self, request: QueueRequest):
        self.request = request


def _claim(
    *, user_id: int, product_id: int, quantity: int, position: int, idempotency_key: str | None = None
) -> QueueRequest:
    """Insert the QUEUED row (committed at once). The unique live key refuses a second live request;
    the unique (user, idempotency_key) a second request for one key (`KeyTaken` names the first)."""
    for _ in range(2):
        request = QueueRequest(
            request_id=uuid.uuid4(),
            user_id=user_id,
            product_id=product_id,
            quantity=quantity,
            queue_position=position,
            idempotency_key=idempotency_key,
            partition_key=f"product:{product_id}",
        )
        try:
            request.save(force_insert=True)  # one INSERT, committed at once (autocommit)
            return request
        except IntegrityError:
            if idempotency_key is not None and (taken := request_with_key(user_id, idempotency_key)):
                raise KeyTaken(taken) from None
            live = QueueRequest.objects.filter(user_id=user_id, product_id=product_id, live=True).first()
            if live is not None:
                raise AlreadyQueued(
                    data={
                        "requestId": str(live.request_id),
                        "queuePosition": live.queue_position,
                    }
                ) from None
            # the live request finished between our insert and our read: try once more
    raise AlreadyQueued()


def _message(request: QueueRequest) -> bytes:
    return json.dumps(
        {
            "type": "request",
            "requestId": str(request.request_id),
            "productId": request.product_id,
            "userId": request.user_id,
            "quantity": request.quantity,
            "queuePosition": request.queue_position,
        }
    ).encode()


def queue_request_withdraw(request: QueueRequest) -> QueueRequest | None:
    """Delete a claim the broker did not acknowledge. None if deleted; else the row the consumer answered."""
    deleted, _ = QueueRequest.objects.filter(pk=request.pk, status=QUEUED).delete()
    if deleted:
        return None
    return QueueRequest.objects.select_related("order").get(pk=request.pk)
