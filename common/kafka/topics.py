"""Topic names (every topic carries the KAFKA_TOPIC_PREFIX) and their creation."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from django.conf import settings

log = logging.getLogger(__name__)


def topic(name: str) -> str:
    return f"{settings.KAFKA_TOPIC_PREFIX}.{name}"


def ensure_topics(names: Iterable[str], *, partitions: int = 4, timeout: float = 10.0) -> None:
    """Create the topics that do not exist yet (auto-creation on first produce is too slow for a
    request path with a short delivery timeout)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS})
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names if n not in existing]
    if not missing:
        return
    for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        log.info("kafka: created topic %s", name)
