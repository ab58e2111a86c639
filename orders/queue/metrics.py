"""The flash-sale queue's answers, counted for the sale dashboard (`common.live.recorder`) and for
Prometheus (`shop_queue_answers_total`, served by the checkout consumer on
CHECKOUT_CONSUMER_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter

from common.live.recorder import RECORDER

QUEUE_ANSWERS = Counter("shop_queue_answers_total", "Flash-sale queue requests answered", ["result"])


def queue_answers_count(completed: int, failed: dict[str, int]) -> None:
    """The checkout consumer's answers of one committed chunk (orders created, refusals by code)."""
    RECORDER.count("orders:queue", completed)
    if completed:
        QUEUE_ANSWERS.labels("COMPLETED").inc(completed)
    for code, amount in failed.items():
        RECORDER.count("failed:" + code, amount)
        QUEUE_ANSWERS.labels(code).inc(amount)
