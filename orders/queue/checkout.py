"""`POST /checkout`: every checkout through the queue, with synchronous failover.

A whole checkout (direct lines, or cart lines; an optional coupon) is one ORDER request row, admitted
like a flash-sale request (`admission.py`): validate, refuse a flagged sold-out flash product, take a
position, INSERT the claim (committed), produce a message naming it and wait for the ack. The
consumer (`checkout_requests_process`) then serves each request in its own transaction through the
synchronous use case `checkout_initiate` (the same validation, per-user limits, coupon, balance
pre-check, stock reservation and order shape), marks the row COMPLETED or FAILED and stores the SSE
result event in that transaction (`checkout_request_serve`).

Message key: `user:<id>` for a cart checkout, `product:<first product id>` for direct lines. Kafka
orders messages only within one key (one partition), so one user's cart checkouts are served in
order, and direct checkouts starting with the same product queue behind each other and behind that
product's flash-sale requests. A multi-line order whose hot product is not its first line runs on
another partition, concurrently with that product's own queue: there is no FIFO fairness across
keys, and the stock row is shared. What keeps it correct (not ordered) is the locked reservation
and the lock order of `common.db`.

Failover: when the broker does not acknowledge in time (`ProduceFailed`), the same call serves the
request itself with `checkout_request_serve(mode=SYNC_FALLBACK)`: the row lock decides between the
web process and a consumer that got the message after all (exactly one serves it; the other finds it
no longer QUEUED), so the row never stays QUEUED and the order is never made twice. A request with
any flash-sale product is not served synchronously: its claim is withdrawn and the answer is 503
QUEUE_UNAVAILABLE with Retry-After, so that a broker outage cannot send every buyer of a hot
product through the synchronous lock convoy the queue exists to avoid (the old service's incident 2).

Idempotency-Key: stored on the row in its INSERT, as for `/checkout/queue`. A retry finds the row:
still QUEUED, it is produced again (or failed over) and answered queued; answered by either path, the
answer is the first one's (the order for SYNC_FALLBACK, the same error code for a synchronous refusal).
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from common.db import run_in_transaction
from common.errors import CacheUnavailable, Conflict, DomainError, IdempotencyKeyReused
from common.kafka import OutgoingMessage, ProduceFailed, produce_and_wait, topic
from common.sse.push import SseBatch, StoredEvent, sse_publish, sse_push_stored
from orders.errors import InvalidItems, QueueUnavailable, SoldOut
from orders.limits import user_limits_enforce
from orders.models import Order, QueueRequest
from orders.queue.admission import KeyTaken, queue_request_withdraw, request_with_key
from orders.queue.allocation import result_event
from orders.queue.keys import QUEUE_TOPIC, count_answered, queue_key, redis_client
from orders.services import LineRequest, checkout_initiate, checkout_lines_from_cart, checkout_lines_validate
from shop.errors import CouponNotUsable, ProductNotFound
from shop.models import Product, UserCoupon

log = logging.getLogger(__name__)

QUEUED, COMPLETED, FAILED = QueueRequest.Status.QUEUED, QueueRequest.Status.COMPLETED, QueueRequest.Status.FAILED
ORDER = QueueRequest.Kind.ORDER
SYNC_FALLBACK = QueueRequest.Mode.SYNC_FALLBACK
SERVE_CHUNK = 100  # waiting rows of one key read at a time by the consumer (each served in its own transaction)

# KEYS: the flags (soldout, closed) of every flash-sale product of the request, then pos, done.
# Returns {-i, 0} when KEYS[i] is set, else {position, answered so far}.
_ADMIT = """
for i = 1, #KEYS - 2 do
  if redis.call('EXISTS', KEYS[i]) > 0 then return {-i, 0} end
end
local position = redis.call('INCR', KEYS[#KEYS - 1])
return {position, tonumber(redis.call('GET', KEYS[#KEYS]) or '0')}
"""


@dataclass(frozen=True)
class CheckoutWanted:
    """What the client asked for: exactly one of `lines` and `cart_item_ids`."""

    user_id: int
    lines: list[LineRequest] | None = None
    cart_item_ids: list[int] | None = None
    user_coupon_id: int | None = None
    delivery_address: str = ""


@dataclass(frozen=True)
class CheckoutTicket:
    request: QueueRequest
    estimated_wait_seconds: int

    @property
    def order(self) -> Order | None:
        """The order of a request served synchronously (None while it is queued, or served by the consumer)."""
        return self.request.order if self.request.mode == SYNC_FALLBACK else None


def checkout_enqueue(*, wanted: CheckoutWanted, idempotency_key: str | None = None) -> CheckoutTicket:
    """Validate, admit, claim and publish a whole checkout; fail over to the synchronous checkout when
    the broker does not acknowledge (see the module docstring)."""
    if (wanted.lines is None) == (wanted.cart_item_ids is None):
        raise InvalidItems("Give exactly one of items and cartItemIds.")
    if wanted.cart_item_ids is not None:
        lines = checkout_lines_from_cart(wanted.user_id, wanted.cart_item_ids)
    else:
        lines = list(wanted.lines or [])
    checkout_lines_validate(lines)
    flash = _flash_products(lines)
    if idempotency_key is not None:
        earlier = request_with_key(wanted.user_id, idempotency_key)
        if earlier is not None:
            return _resume(earlier, wanted, flash=flash)
    # quick refusals without queueing; the consumer's checkout is the authority
    user_limits_enforce(
        user_id=wanted.user_id, lines=[(line.product_id, line.quantity) for line in lines], flash_product_ids=flash
    )
    if wanted.user_coupon_id is not None:
        _own_coupon(wanted.user_id, wanted.user_coupon_id)
    if connection.in_atomic_block:
        raise RuntimeError("checkout_enqueue talks to Kafka and must not run inside a transaction")
    key = f"user:{wanted.user_id}" if wanted.cart_item_ids is not None else f"product:{lines[0].product_id}"
    position, ahead = _admit(key, flash)
    try:
        request = _claim(wanted, lines, key, position, idempotency_key)
    except KeyTaken as taken:  # a concurrent attempt with the same key inserted first
        count_answered(key)
        return _resume(taken.request, wanted, flash=flash)
    return _publish(request, ahead=ahead, flash=bool(flash))


def _flash_products(lines: list[LineRequest]) -> list[int]:
    """404 PRODUCT_NOT_FOUND for an unknown or inactive product; returns the flash-sale ones."""
    found = dict(
        Product.objects.filter(pk__in=[line.product_id for line in lines], status=Product.Status.ACTIVE).values_list(
            "pk", "is_flash_sale"
        )
    )
    for line in lines:
        if line.product_id not in found:
            raise ProductNotFound(data={"productId": line.product_id})
    return sorted(pk for pk, is_flash_sale in found.items() if is_flash_sale)


def _own_coupon(user_id: int, user_coupon_id: int) -> None:
    """Another user's (or no) coupon is refused at once, with the checkout's own answer."""
    if not UserCoupon.objects.filter(pk=user_coupon_id, user_id=user_id).exists():
        raise CouponNotUsable(data={"userCouponId": user_coupon_id, "reason": "NOT_FOUND"})


def _admit(key: str, flash: list[int]) -> tuple[int, int]:
    """Refuse a flash-sale product flagged sold out; take the key's next position. Returns (position,
    ahead). Without Redis a request with no flash-sale product is admitted at position 0 (the
    database is the truth); one with a flash-sale product is refused (CACHE_UNAVAILABLE), as at
    `/checkout/queue`."""
    flags = [queue_key(kind, product_id) for product_id in flash for kind in ("soldout", "closed")]
    keys = [*flags, queue_key("pos", key), queue_key("done", key)]
    try:
        position, answered = redis_client().eval(_ADMIT, len(keys), *keys)
    except RedisError as exc:
        if flash:
            raise CacheUnavailable() from exc
        log.warning("checkout: Redis unavailable, request admitted without a queue position")
        return 0, 0
    if position < 0:
        raise SoldOut(data={"productId": flash[(-int(position) - 1) // 2]})
    return int(position), max(int(position) - int(answered) - 1, 0)


def _lines_json(lines: list[LineRequest]) -> list[dict]:
    return [
        {
            "productId": line.product_id,
            "quantity": line.quantity,
            "giftWrap": line.gift_wrap,
            "giftMessage": line.gift_message,
        }
        for line in lines
    ]


def _claim(
    wanted: CheckoutWanted, lines: list[LineRequest], key: str, position: int, idempotency_key: str | None
) -> QueueRequest:
    """Insert the QUEUED row (committed at once); `KeyTaken` names the request a key already made."""
    request = QueueRequest(
        request_id=uuid.uuid4(),
        user_id=wanted.user_id,
        kind=ORDER,
        quantity=sum(line.quantity for line in lines),
        lines=_lines_json(wanted.lines) if wanted.lines is not None else None,
        cart_item_ids=list(wanted.cart_item_ids) if wanted.cart_item_ids is not None else None,
        user_coupon_id=wanted.user_coupon_id,
        delivery_address=wanted.delivery_address,
        partition_key=key,
        queue_position=position,
        idempotency_key=idempotency_key,
    )
    try:
        request.save(force_insert=True)  # one INSERT, committed at once (autocommit)
    except IntegrityError:
        if idempotency_key is not None and (taken := request_with_key(wanted.user_id, idempotency_key)):
            raise KeyTaken(taken) from None
        raise
    return request


def _publish(request: QueueRequest, *, ahead: int, flash: bool) -> CheckoutTicket:
    value = json.dumps({"type": "order", "requestId": str(request.request_id)}).encode()
    try:
        produce_and_wait(OutgoingMessage(topic(QUEUE_TOPIC), key=request.partition_key, value=value))
    except ProduceFailed as exc:
        return _fail_over(request, flash=flash, reason=exc)
    wait = math.ceil(ahead / max(settings.QUEUE_ESTIMATED_RATE, 1))
    sse_push_stored(
        request.user_id,
        "checkout-queued",
        {
            "requestId": str(request.request_id),
            "mode": request.mode,
            "queuePosition": request.queue_position,
            "estimatedWaitSeconds": wait,
        },
    )
    return CheckoutTicket(request=request, estimated_wait_seconds=wait)


def _fail_over(request: QueueRequest, *, flash: bool, reason: ProduceFailed) -> CheckoutTicket:
    """No ack: serve the request here and now, or (flash-sale products) withdraw it and answer 503."""
    if flash:
        served = queue_request_withdraw(request)
        if served is None:
            count_answered(request.counter)
            log.warning(
                "checkout: request %s withdrawn (flash-sale product), no broker ack: %s", request.request_id, reason
            )
            raise QueueUnavailable() from reason
        return CheckoutTicket(request=served, estimated_wait_seconds=0)  # the consumer answered it after all
    log.warning("checkout: request %s served synchronously, no broker ack: %s", request.request_id, reason)
    served, refusal = checkout_request_serve(request_id=request.request_id, mode=SYNC_FALLBACK)
    if served is None:  # the message had landed and the consumer was first: its answer
        return CheckoutTicket(
            request=QueueRequest.objects.select_related("order").get(pk=request.pk), estimated_wait_seconds=0
        )
    if refusal is not None:
        raise refusal
    return CheckoutTicket(request=served, estimated_wait_seconds=0)


def _ahead(request: QueueRequest) -> int:
    try:
        answered = int(redis_client().get(queue_key("done", request.counter)) or 0)
    except RedisError:
        return 0
    return max(request.queue_position - answered - 1, 0)


def _same_request(row: QueueRequest, wanted: CheckoutWanted) -> bool:
    lines = _lines_json(wanted.lines) if wanted.lines is not None else None
    cart = list(wanted.cart_item_ids) if wanted.cart_item_ids is not None else None
    return (row.kind, row.lines, row.cart_item_ids, row.user_coupon_id, row.delivery_address) == (
        ORDER,
        lines,
        cart,
        wanted.user_coupon_id,
        wanted.delivery_address,
    )


def _resume(earlier: QueueRequest, wanted: CheckoutWanted, *, flash: list[int]) -> CheckoutTicket:
    """Answer a retry with the request its key already made (see the module docstring)."""
    if not _same_request(earlier, wanted):
        raise IdempotencyKeyReused()  # the key named another request (its stored answer expired)
    log.info("checkout: request %s (%s) retried with its Idempotency-Key", earlier.request_id, earlier.status)
    if earlier.status == QUEUED:
        return _publish(earlier, ahead=_ahead(earlier), flash=bool(flash))
    if earlier.status == FAILED and earlier.mode == SYNC_FALLBACK:
        raise refusal_for(earlier.error_code)  # the first answer was this refusal
    earlier = QueueRequest.objects.select_related("order").get(pk=earlier.pk)
    return CheckoutTicket(request=earlier, estimated_wait_seconds=0)


def refusal_for(code: str) -> DomainError:
    """The DomainError whose code is `code` (its status and message), to repeat a stored refusal."""
    pending: list[type[DomainError]] = [DomainError]
    while pending:
        cls = pending.pop(0)
        if cls.code == code:
            return cls()
        pending.extend(cls.__subclasses__())
    return Conflict(code=code)


# --- serving (the consumer, and the web process on failover) --------------------------------------


def checkout_request_serve(*, request_id: uuid.UUID, mode: str) -> tuple[QueueRequest | None, DomainError | None]:
    """Serve one QUEUED ORDER request in one transaction: lock its row, run `checkout_initiate`, mark
    the row COMPLETED (with its order) or FAILED (with the refusal's code) in `mode`, store its SSE
    result event. Returns (the row, the refusal), or (None, None) if the row is not QUEUED any more
    (served already, or withdrawn). A transient failure (5xx: lock retries exhausted, an outage) is
    raised and leaves the row QUEUED for the next attempt.

    Locks (common.db): the request row, the user's SSE counter, then what `checkout_initiate` locks
    (the wallet, the coupon, the stock rows last)."""

    def serve() -> tuple[QueueRequest | None, DomainError | None]:
        row = QueueRequest.objects.select_for_update().filter(request_id=request_id, kind=ORDER, status=QUEUED).first()
        if row is None:
            return None, None
        events = SseBatch([row.user_id])
        refusal: DomainError | None = None
        try:
            order = checkout_initiate(
                user_id=row.user_id,
                cart_item_ids=row.cart_item_ids,
                direct_items=_line_requests(row.lines) if row.lines is not None else None,
                user_coupon_id=row.user_coupon_id,
                delivery_address=row.delivery_address,
            )
        except DomainError as refused:
            if refused.status >= 500:
                raise
            refusal = refused
            row.status, row.error_code = FAILED, refused.code
        else:
            row.status, row.order = COMPLETED, order
        row.live, row.mode, row.completed_at = None, mode, timezone.now()
        row.save(update_fields=["status", "error_code", "order", "live", "mode", "completed_at"])
        events.add(row.user_id, *checkout_result_event(row))
        transaction.on_commit(partial(_after_commit, row.counter, events.store()))
        return row, refusal

    return run_in_transaction(serve, catches_refusals=True)


def _line_requests(lines: list[dict]) -> list[LineRequest]:
    return [
        LineRequest(int(line["productId"]), int(line["quantity"]), bool(line["giftWrap"]), str(line["giftMessage"]))
        for line in lines
    ]


def checkout_result_event(row: QueueRequest) -> tuple[str, dict]:
    payload = {
        "requestId": str(row.request_id),
        "status": row.status,
        "mode": row.mode,
        "queuePosition": row.queue_position,
    }
    return result_event(row, payload)


def _after_commit(counter: int | str, stored: list[StoredEvent]) -> None:
    sse_publish(stored)
    count_answered(counter)


def checkout_requests_process(*, request_ids: list[uuid.UUID]) -> int:
    """The consumer: serve the ORDER requests a polled batch names, and every older QUEUED request of
    the same keys (a claim whose message never left is answered with the next one), oldest first, one
    transaction each. Returns how many it answered."""
    up_to: dict[str, int] = {}
    named = QueueRequest.objects.filter(request_id__in=request_ids, kind=ORDER).values_list("partition_key", "id")
    for key, row_id in named:
        up_to[key] = max(up_to.get(key, 0), row_id)
    answered = 0
    for key, newest in up_to.items():
        while True:
            waiting = list(
                QueueRequest.objects.filter(partition_key=key, status=QUEUED, kind=ORDER, id__lte=newest)
                .order_by("id")
                .values_list("request_id", flat=True)[:SERVE_CHUNK]
            )
            answered += _serve_each(waiting)
            if len(waiting) < SERVE_CHUNK:
                break
    return answered + _serve_forgotten()


def _serve_each(request_ids: list[uuid.UUID]) -> int:
    answered = 0
    for request_id in request_ids:
        served, _ = checkout_request_serve(request_id=request_id, mode=QueueRequest.Mode.QUEUED)
        answered += served is not None
    return answered


def _serve_forgotten() -> int:
    """Serve ORDER requests QUEUED for longer than QUEUE_ORDER_SWEEP_SECONDS, whatever their key: a
    claim whose message never left (its web process died before producing), or whose acknowledged
    message the broker lost (a broker without durable storage restarted), would otherwise wait for
    the next message of its key, which may never come. ORDER rows have no product, so the index
    (product, status, id) finds them."""
    before = timezone.now() - timedelta(seconds=settings.QUEUE_ORDER_SWEEP_SECONDS)
    forgotten = list(
        QueueRequest.objects.filter(product__isnull=True, status=QUEUED, created_at__lt=before)
        .order_by("id")
        .values_list("request_id", flat=True)[:SERVE_CHUNK]
    )
    if forgotten:
        log.warning(
            "checkout: serving %d request(s) queued for over %s s", len(forgotten), settings.QUEUE_ORDER_SWEEP_SECONDS
        )
    return _serve_each(forgotten)
