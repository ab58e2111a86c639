"""Kafka: one shared producer, the registry of consumers, and the loop that runs any of them.

- `producer`: the shared idempotent producer and `produce_and_wait` (the one way to send and wait);
- `topics`: topic names and their creation;
- `registry`: `ConsumerSpec`, `register_consumer`, `load_consumers`;
- `runner`: `ConsumerRunner` (`manage.py run_consumer <name>`) and helpers for consumed messages.

Consumers are declared once, next to their domain code (`orders/consumers.py`,
`outbox/consumers.py`), and run by one command: `manage.py run_consumer <name>`.

The runner's contract with a handler:
- the handler receives a *batch* of messages (all from one poll) and applies them inside its own
  database transaction(s); it must be idempotent (a replay after a crash must do nothing twice);
- offsets are committed synchronously only after the handler returned, i.e. after its transaction
  committed; if it raises, nothing is committed, the consumer seeks back to the batch's first
  offsets and the batch is retried with back-off; a commit that fails (the group moved on: the
  broker restarted, a rebalance) is logged, never fatal: the batch may come again and is skipped;
- SIGTERM/SIGINT finish the current batch, commit, leave the group and exit.
"""

from __future__ import annotations

from common.kafka.producer import (
    GuardedProducer,
    OutgoingMessage,
    ProduceFailed,
    get_producer,
    produce_and_wait,
    producer_config,
    reset_producer,
)
from common.kafka.registry import REGISTRY, BatchHandler, ConsumerSpec, load_consumers, register_consumer
from common.kafka.runner import ConsumerRunner, describe, header, next_offsets
from common.kafka.topics import ensure_topics, topic

__all__ = [
    "REGISTRY",
    "BatchHandler",
    "ConsumerRunner",
    "ConsumerSpec",
    "GuardedProducer",
    "OutgoingMessage",
    "ProduceFailed",
    "describe",
    "ensure_topics",
    "get_producer",
    "header",
    "load_consumers",
    "next_offsets",
    "produce_and_wait",
    "producer_config",
    "register_consumer",
    "reset_producer",
    "topic",
]
