"""Kafka consumers of the orders app: `manage.py run_consumer checkout` (the checkout queue)."""

from __future__ import annotations

import json
import logging
import uuid

from confluent_kafka import Message
from django.conf import settings

from common.kafka import ConsumerSpec, register_consumer, topic
from common.live.progress import progress_record
from common.live.prometheus import serve_process_metrics
from orders.queue.allocation import queue_process_batch
from orders.queue.checkout import checkout_requests_process
from orders.queue.keys import QUEUE_TOPIC

log = logging.getLogger(__name__)


def handle_checkout_batch(messages: list[Message]) -> None:
    """Decode the batch (flash-sale requests, whole checkouts and operator wake-ups) and answer it; see
    orders/queue/. The flash-sale requests are allocated in batches per product first, then each whole
    checkout (`POST /checkout`) is served in its own transaction, in partition order.

    A malformed message is logged and skipped: it names no claim, so there is nothing to answer,
    and retrying it would block its partition forever.
    """
    serve_process_metrics(settings.CHECKOUT_CONSUMER_METRICS_PORT, settings.CHECKOUT_CONSUMER_METRICS_ADDR)
    request_ids: list[uuid.UUID] = []
    order_request_ids: list[uuid.UUID] = []
    wake_product_ids: set[int] = set()
    for msg in messages:
        try:
            body = json.loads(msg.value())
            if body.get("type") == "wake":
                wake_product_ids.add(int(body["productId"]))
            elif body.get("type") == "order":
                order_request_ids.append(uuid.UUID(str(body["requestId"])))
            else:
                request_ids.append(uuid.UUID(str(body["requestId"])))
        except (TypeError, ValueError, KeyError, AttributeError):
            log.warning("checkout: skipping malformed message %s[%s]@%s", msg.topic(), msg.partition(), msg.offset())
    if request_ids or wake_product_ids:
        queue_process_batch(request_ids=request_ids, wake_product_ids=wake_product_ids)
    if order_request_ids:
        checkout_requests_process(request_ids=order_request_ids)
    progress_record("checkout", messages)  # per-partition progress for the sale dashboard (memory)


CHECKOUT_CONSUMER = register_consumer(
    ConsumerSpec(
        name="checkout",
        topics=(topic(QUEUE_TOPIC),),
        group=f"{settings.KAFKA_GROUP_PREFIX}-checkout",
        handler=handle_checkout_batch,
        batch_size=1000,
        # notice the topic within seconds if the consumer starts before the first request creates it
        extra_config={"topic.metadata.refresh.interval.ms": 5000},
    )
)
