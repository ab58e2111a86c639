from collections.abc import Iterator

import pytest

from outbox.handlers import HANDLERS, Handler, load_handlers
from outbox.tests.processes import EVENT_TOPICS, OutboxProcesses


@pytest.fixture
def outbox_processes(transactional_db, private_kafka, tmp_path) -> Iterator[OutboxProcesses]:
    """The outbox's real processes for this test, on its own topics (see outbox/tests/processes.py)."""
    processes = OutboxProcesses(prefix=private_kafka(*EVENT_TOPICS), log_dir=tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture
def register_handler():
    """Register handlers for the test only: `register_handler("Type", apply_fn, publications=(), many=False)`."""
    load_handlers()  # the real ones first: a later load must not find their event types taken
    added: dict[str, Handler | None] = {}

    def register(event_type: str, apply, publications=(), many: bool = False) -> Handler:
        added.setdefault(event_type, HANDLERS.get(event_type))
        HANDLERS[event_type] = Handler(event_type, apply, tuple(publications), many)
        return HANDLERS[event_type]

    yield register
    for event_type, previous in added.items():
        if previous is None:
            HANDLERS.pop(event_type, None)
        else:
            HANDLERS[event_type] = previous
