"""Flash-sale queued checkout (Flow 3): admission (web), batch allocation (consumer), operator switches.

The request row is the claim; the Kafka message is only a wake-up that names it.

Web, `queue_request_enqueue` (runs outside any transaction: it talks to Kafka):
  1. validate the product; admission in Redis (one script): refuse a product flagged sold out,
     else take the next queue position;
  2. INSERT the row (QUEUED, live=1), committed at once (autocommit). The unique key
     (user, product, live) is the one-live-request rule, enforced by the database;
  3. produce {requestId, ...} keyed `product:<id>` and wait for the broker's ack (bounded);
  4. no ack: *withdraw* the claim, `DELETE ... WHERE status = 'QUEUED'`. Deleted: 503
     QUEUE_UNAVAILABLE and nothing is recorded. Not deleted: the consumer served it already (the
     message did land, or the row was swept up, see below), so the answer is 202 after all.

With an Idempotency-Key the row carries the key (unique per user), inserted in step 2. A retry
whose first attempt died after that INSERT (its web worker killed: the answer was never stored, and
the retry took over the stale key) finds the row first and answers with it instead of queueing a
second request: still QUEUED, its message is produced again (the first attempt may have died before
producing it; a second message for an answered row does nothing) and the answer follows steps 3-4;
already answered, the 202 names it at once.

Consumer, `queue_process_batch`: for each product in the batch, every QUEUED row of that product
up to the newest row the batch names is answered, oldest first (row id = admission order), in
chunks of one transaction each: lock the rows, lock the stock row once, allocate while stock lasts,
bulk-create orders, order items and reservations, one guarded stock update, mark the rows
COMPLETED / FAILED, store their SSE events (orders/sse_store.py); after commit, publish the events
and refresh the Redis counters and sold-out flag. It only ever touches rows it finds QUEUED under
its lock, so:
  - a replayed batch (crash before the offset commit) finds its rows done and does nothing;
  - a message whose claim was withdrawn (it landed after the 503), or that belongs to another
    database sharing the topic, finds no row and does nothing;
  - a claim whose message never left (the web process died between steps 2 and 3) is answered by
    the next batch of the same product, or by an operator "process waiting requests" (a wake
    message), so it is neither lost nor blocking its user forever;
  - a withdrawal racing the consumer is serialized by the row lock: exactly one of them wins;
  - a paused product (FlashSaleControl) is skipped: its rows stay QUEUED and its offsets move on;
    resuming sends a wake message, and that batch answers every waiting row in admission order.

Why not produce first and insert after the ack: the one-live-request check would then come after the
message is on the queue; two concurrent requests of one user would both be queued, and a message
whose insert failed (or whose web process died) could no longer be told from a legitimate one.

Redis holds only what can be lost: positions (`queue:pos:<id>`), answered counts (`queue:done:<id>`),
the consumer's sold-out flag (`queue:soldout:<id>`, expires after QUEUE_SOLD_OUT_FLAG_SECONDS so a
restocked product is never refused for long) and the operator's flag (`queue:closed:<id>`).
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django_redis import get_redis_connection
from redis import Redis
from redis.exceptions import RedisError

from common.db import run_in_transaction
from common.errors import (
    CacheUnavailable,
    Conflict,
    DependencyUnavailable,
    IdempotencyKeyReused,
    NotFound,
    ValidationFailed,
)
from common.kafka import ProduceFailed, produce_and_wait, topic
from common.sse import sse_trim
from dashboard.recorder import live_count_answers
from inventory.models import Reservation, Stock
from orders.bulk_sql import insert_rows, update_by_pk
from orders.models import FlashSaleControl, Order, OrderItem, QueueRequest, QueueRequestStatus
from orders.sse_store import SseBatch, StoredEvent, sse_publish, sse_push_stored
from shop.errors import ProductNotFound
from shop.models import PointWallet, Product

log = logging.getLogger(__name__)

QUEUE_TOPIC = "queue.checkout"
MAX_QUANTITY = 10
CHUNK_SIZE = 1000  # request rows per consumer transaction

QUEUED, COMPLETED, FAILED = QueueRequestStatus.QUEUED, QueueRequestStatus.COMPLETED, QueueRequestStatus.FAILED
SOLD_OUT, INSUFFICIENT_STOCK, INSUFFICIENT_BALANCE = "SOLD_OUT", "INSUFFICIENT_STOCK", "INSUFFICIENT_BALANCE"


# --- errors ----------------------------------------------------------------------------------


class QueueUnavailable(DependencyUnavailable):
    code, message, retry_after = "QUEUE_UNAVAILABLE", "The checkout queue is unavailable; retry shortly.", 2


class SoldOut(Conflict):
    code, message = "SOLD_OUT", "This product is sold out."


class AlreadyQueued(Conflict):
    code, message = "ALREADY_QUEUED", "You already have a queued request for this product."


class NotFlashSaleProduct(Conflict):
    code, message = "NOT_FLASH_SALE_PRODUCT", "This product is not sold through the flash-sale queue."


class QueueRequestNotFound(NotFound):
    code, message = "QUEUE_REQUEST_NOT_FOUND", "Queue request not found."


# --- Redis -----------------------------------------------------------------------------------


def _redis() -> Redis:
    return get_redis_connection("default")


def _key(kind: str, product_id: int) -> str:
    return caches["default"].make_key(f"queue:{kind}:{product_id}")


# KEYS: soldout, closed, pos, done. Returns {-1, 0} when flagged, else {position, answered so far}.
_ADMIT = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return {-1, 0} end
local position = redis.call('INCR', KEYS[3])
return {position, tonumber(redis.call('GET', KEYS[4]) or '0')}
"""


def _admit(product_id: int) -> tuple[int, int]:
    """Refuse a product flagged sold out; else take the next position. Returns (position, ahead)."""
    keys = [_key(kind, product_id) for kind in ("soldout", "closed", "pos", "done")]
    try:
        position, answered = _redis().eval(_ADMIT, len(keys), *keys)
    except RedisError as exc:
        raise CacheUnavailable() from exc
    if position < 0:
        raise SoldOut(data={"productId": product_id})
    return int(position), max(int(position) - int(answered) - 1, 0)


def _count_answered(product_id: int, count: int = 1) -> None:
    """Positions minus answered requests is the queue length behind the wait estimate."""
    try:
        _redis().incrby(_key("done", product_id), count)
    except RedisError:
        log.warning("queue: could not count %d answered request(s) of product %s", count, product_id)


# --- web: enqueue ------------------------------------------------------------------------------


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
    if not 1 <= quantity <= MAX_QUANTITY:
        raise ValidationFailed(f"quantity must be between 1 and {MAX_QUANTITY}.")
    _flash_sale_product(product_id)
    if idempotency_key is not None:
        earlier = _request_with_key(user_id, idempotency_key)
        if earlier is not None:
            return _resume(earlier, product_id=product_id, quantity=quantity)
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
        _count_answered(product_id)
        raise
    except _KeyTaken as taken:  # a concurrent attempt with the same key inserted first
        _count_answered(product_id)
        return _resume(taken.request, product_id=product_id, quantity=quantity)
    return _publish(request, ahead=ahead)


def _publish(request: QueueRequest, *, ahead: int) -> QueueTicket:
    """Produce the request's message and wait for the ack (withdraw it without one), then push
    `checkout-queued`."""
    try:
        produce_and_wait(topic(QUEUE_TOPIC), key=f"product:{request.product_id}", value=_message(request))
    except ProduceFailed as exc:
        served = _withdraw(request)
        if served is None:
            _count_answered(request.product_id)
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


def _request_with_key(user_id: int, idempotency_key: str) -> QueueRequest | None:
    return QueueRequest.objects.filter(user_id=user_id, idempotency_key=idempotency_key).first()


def _resume(earlier: QueueRequest, *, product_id: int, quantity: int) -> QueueTicket:
    """Answer a retry with the request its key already made. Still QUEUED: publish it again (its
    first attempt may have died before producing it). Answered: nothing to do but name it."""
    if (earlier.product_id, earlier.quantity) != (product_id, quantity):
        raise IdempotencyKeyReused()  # the key named another request (its stored answer expired)
    log.info("queue: request %s (%s) retried with its Idempotency-Key", earlier.request_id, earlier.status)
    if earlier.status != QUEUED:
        return QueueTicket(request=earlier, estimated_wait_seconds=0)
    return _publish(earlier, ahead=_ahead(earlier))


def _ahead(request: QueueRequest) -> int:
    """How many requests are still ahead of a queued one (0 if Redis cannot tell)."""
    try:
        answered = int(_redis().get(_key("done", request.product_id)) or 0)
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


class _KeyTaken(Exception):
    def __init__(self, request: QueueRequest):
        self.request = request


def _claim(
    *, user_id: int, product_id: int, quantity: int, position: int, idempotency_key: str | None = None
) -> QueueRequest:
    """Insert the QUEUED row (committed at once). The unique live key refuses a second live request;
    the unique (user, idempotency_key) a second request for one key (`_KeyTaken` names the first)."""
    for _ in range(2):
        request = QueueRequest(
            request_id=uuid.uuid4(),
            user_id=user_id,
            product_id=product_id,
            quantity=quantity,
            queue_position=position,
            idempotency_key=idempotency_key,
        )
        try:
            request.save(force_insert=True)  # one INSERT, committed at once (autocommit)
            return request
        except IntegrityError:
            if idempotency_key is not None and (taken := _request_with_key(user_id, idempotency_key)):
                raise _KeyTaken(taken) from None
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


def _withdraw(request: QueueRequest) -> QueueRequest | None:
    """Delete a claim the broker did not acknowledge. None if deleted; else the row the consumer answered."""
    deleted, _ = QueueRequest.objects.filter(pk=request.pk, status=QUEUED).delete()
    if deleted:
        return None
    return QueueRequest.objects.select_related("order").get(pk=request.pk)


def queue_request_get(*, user_id: int, request_id: uuid.UUID) -> QueueRequest:
    """The caller's own request (anyone else's is 404, not 403: ids are not disclosed)."""
    request = QueueRequest.objects.select_related("order").filter(request_id=request_id, user_id=user_id).first()
    if request is None:
        raise QueueRequestNotFound()
    return request


# --- consumer: allocate in batches -------------------------------------------------------------


def queue_process_batch(*, request_ids: Iterable[uuid.UUID], wake_product_ids: Iterable[int] = ()) -> int:
    """Answer the QUEUED requests a polled batch names (see the module docstring). Returns how many."""
    up_to: dict[int, int] = {}
    for product_id, row_id in QueueRequest.objects.filter(request_id__in=list(request_ids)).values_list(
        "product_id", "id"
    ):
        up_to[product_id] = max(up_to.get(product_id, 0), row_id)
    for product_id in set(wake_product_ids):
        newest = (
            QueueRequest.objects.filter(product_id=product_id, status=QUEUED)
            .order_by("-id")
            .values_list("id", flat=True)
            .first()
        )
        if newest is not None:
            up_to[product_id] = max(up_to.get(product_id, 0), newest)
    paused = set(
        FlashSaleControl.objects.filter(product_id__in=up_to, paused=True).values_list("product_id", flat=True)
    )
    answered = 0
    for product_id in sorted(up_to):
        if product_id in paused:
            log.info("queue: product %s is paused; its requests stay QUEUED", product_id)
            continue
        answered += _process_product(product_id, up_to[product_id])
    return answered


def _process_product(product_id: int, up_to_id: int) -> int:
    answered = 0
    while True:
        count = run_in_transaction(lambda: _allocate_chunk(product_id, up_to_id))
        answered += count
        if count < CHUNK_SIZE:
            return answered


def _allocate_chunk(product_id: int, up_to_id: int) -> int:
    """One transaction: lock up to CHUNK_SIZE QUEUED rows (oldest first) and the stock row, answer them all."""
    rows = list(
        QueueRequest.objects.select_for_update()
        .filter(product_id=product_id, status=QUEUED, id__lte=up_to_id)
        .order_by("id")[:CHUNK_SIZE]
    )
    if not rows:
        return 0
    product = Product.objects.only("id", "name", "price").get(pk=product_id)
    user_ids = [r.user_id for r in rows]
    balances = dict(PointWallet.objects.filter(user_id__in=user_ids).values_list("user_id", "balance"))
    events = SseBatch(user_ids)  # the users' SSE counters, locked before the hot stock row
    stock = Stock.objects.select_for_update().filter(pk=product_id).first()  # the one hot-row lock
    available = stock.available_quantity if stock else 0
    winners: list[QueueRequest] = []
    losers: dict[str, list[QueueRequest]] = defaultdict(list)
    for row in rows:
        if balances.get(row.user_id, 0) < product.price * row.quantity:
            losers[INSUFFICIENT_BALANCE].append(row)
        elif row.quantity > available:
            losers[SOLD_OUT if available == 0 else INSUFFICIENT_STOCK].append(row)
        else:
            winners.append(row)
            available -= row.quantity
    now = timezone.now()
    if winners:
        assert stock is not None
        _create_orders(product, stock, winners, now)
    for code, group in losers.items():
        QueueRequest.objects.filter(pk__in=[r.pk for r in group], status=QUEUED).update(
            status=FAILED, live=None, error_code=code, completed_at=now
        )
        for row in group:
            row.status, row.error_code = FAILED, code
    for row in rows:
        events.add(row.user_id, *_result_event(row))
    stored = events.store()
    transaction.on_commit(partial(_after_commit, product_id, stored, len(rows), sold_out=available == 0))
    transaction.on_commit(partial(live_count_answers, len(winners), {c: len(g) for c, g in losers.items()}))
    return len(rows)


def _create_orders(product: Product, stock: Stock, winners: list[QueueRequest], now: datetime) -> None:
    expires_at = now + timedelta(seconds=settings.ORDER_HOLD_SECONDS)
    stamp = timezone.localtime(now).strftime("%Y%m%d%H%M%S")
    orders = [
        Order(
            # derived from the (random, unique) request id: unique, and the key to read the ids back
            order_number=f"O{stamp}{row.request_id.hex[:12].upper()}",
            user_id=row.user_id,
            total_amount=product.price * row.quantity,
            discount_amount=0,
            final_amount=product.price * row.quantity,
            expires_at=expires_at,
        )
        for row in winners
    ]
    insert_rows(orders)
    numbers = [order.order_number for order in orders]
    ids = dict(Order.objects.filter(order_number__in=numbers).values_list("order_number", "pk"))
    for order in orders:
        order.pk = ids[order.order_number]
    insert_rows(
        [
            OrderItem(
                order_id=order.pk,
                product_id=product.pk,
                product_name=product.name,
                quantity=row.quantity,
                unit_price=product.price,
                line_total=product.price * row.quantity,
            )
            for row, order in zip(winners, orders, strict=True)
        ]
    )
    insert_rows(
        [
            Reservation(order_id=order.pk, product_id=product.pk, quantity=row.quantity, expires_at=expires_at)
            for row, order in zip(winners, orders, strict=True)
        ]
    )
    allocated = sum(row.quantity for row in winners)
    updated = Stock.objects.filter(pk=product.pk, version=stock.version).update(
        reserved_quantity=F("reserved_quantity") + allocated, version=F("version") + 1
    )
    if updated != 1:  # impossible while we hold the lock; refuse rather than oversell
        raise RuntimeError(f"stock row of product {product.pk} changed under its lock")
    for row, order in zip(winners, orders, strict=True):
        row.status, row.live, row.order, row.completed_at = COMPLETED, None, order, now
    # one UPDATE for all (`bulk_update` would build a CASE per row and field: seconds of CPU per thousand)
    update_by_pk(
        QueueRequest, {row.pk: row.order_id for row in winners}, "order", status=COMPLETED, live=None, completed_at=now
    )


def _result_event(row: QueueRequest) -> tuple[str, dict]:
    payload = {
        "requestId": str(row.request_id),
        "status": row.status,
        "productId": row.product_id,
        "quantity": row.quantity,
        "queuePosition": row.queue_position,
    }
    if row.status == COMPLETED:
        order = row.order
        assert order is not None
        payload.update(
            orderId=order.pk, orderNumber=order.order_number, finalAmount=order.final_amount, expiresAt=order.expires_at
        )
        return "checkout-completed", payload
    payload["errorCode"] = row.error_code
    return "checkout-failed", payload


def _after_commit(product_id: int, stored: list[StoredEvent], answered: int, *, sold_out: bool) -> None:
    sse_publish(stored)
    try:
        sse_trim()
    except DatabaseError:
        log.warning("queue: could not trim old SSE events", exc_info=True)
    try:
        pipe = _redis().pipeline(transaction=False)
        pipe.incrby(_key("done", product_id), answered)
        if sold_out:
            pipe.set(_key("soldout", product_id), 1, ex=max(settings.QUEUE_SOLD_OUT_FLAG_SECONDS, 1))
        else:
            pipe.delete(_key("soldout", product_id))
        pipe.execute()
    except RedisError:
        log.warning("queue: could not update the Redis counters of product %s", product_id)


# --- operator switches (admin) -------------------------------------------------------------------


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
        produce_and_wait(topic(QUEUE_TOPIC), key=f"product:{product_id}", value=value)
    except ProduceFailed as exc:
        raise QueueUnavailable() from exc


def queue_close(*, product_id: int, closed: bool) -> None:
    """Operator sold-out flag: refuse (or admit again) new requests at once, without expiry."""
    key = _key("closed", product_id)
    try:
        if closed:
            _redis().set(key, 1)
        else:
            _redis().delete(key, _key("soldout", product_id))
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
        soldout, closed, pos = _redis().mget([_key(kind, product_id) for kind in ("soldout", "closed", "pos")])
    except RedisError:
        log.warning("queue: Redis unavailable while reading the flags of product %s", product_id)
        soldout = closed = pos = None
    return QueueFlags(soldout is not None, closed is not None, int(pos or 0))
