"""The consumers of this project: each app declares its own in its `consumers` module
(`register_consumer`), and `load_consumers` imports them all (`manage.py run_consumer <name>`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message
from django.utils.module_loading import autodiscover_modules

BatchHandler = Callable[[list[Message]], None]


@dataclass(frozen=True)
class ConsumerSpec:
    name: str
    topics: tuple[str, ...]
    group: str
    handler: BatchHandler
    batch_size: int = 500
    poll_timeout: float = 0.5  # a poll returns at once when a message is there; this bounds a stop's wait
    topic_regex: bool = False  # topics given as "^prefix\\..*" patterns
    extra_config: dict[str, Any] = field(default_factory=dict)


REGISTRY: dict[str, ConsumerSpec] = {}


def register_consumer(spec: ConsumerSpec) -> ConsumerSpec:
    if spec.name in REGISTRY and REGISTRY[spec.name] != spec:
        raise ValueError(f"consumer {spec.name!r} registered twice")
    REGISTRY[spec.name] = spec
    return spec


def load_consumers() -> dict[str, ConsumerSpec]:
    """Import every installed app's `consumers` module so its registrations run."""
    autodiscover_modules("consumers")
    return REGISTRY
