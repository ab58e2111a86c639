"""The queue's names and counters: its Kafka topic and its Redis keys (see the package docstring).

Redis holds only what can be lost; every writer here logs and carries on when Redis is down.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import caches
from django_redis import get_redis_connection
from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

QUEUE_TOPIC = "queue.checkout"


def redis_client() -> Redis:
    return get_redis_connection("default")


def queue_key(kind: str, product_id: int) -> str:
    """`queue:<kind>:<product id>` in our cache namespace; kind is pos, done, soldout or closed."""
    return caches["default"].make_key(f"queue:{kind}:{product_id}")


def count_answered(product_id: int, count: int = 1) -> None:
    """Positions minus answered requests is the queue length behind the wait estimate."""
    try:
        redis_client().incrby(queue_key("done", product_id), count)
    except RedisError:
        log.warning("queue: could not count %d answered request(s) of product %s", count, product_id)


def record_answered(product_id: int, answered: int, *, sold_out: bool) -> None:
    """After a consumer commit: count the answered requests and set (or clear) the sold-out flag."""
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.incrby(queue_key("done", product_id), answered)
        if sold_out:
            pipe.set(queue_key("soldout", product_id), 1, ex=max(settings.QUEUE_SOLD_OUT_FLAG_SECONDS, 1))
        else:
            pipe.delete(queue_key("soldout", product_id))
        pipe.execute()
    except RedisError:
        log.warning("queue: could not update the Redis counters of product %s", product_id)
