import pytest

from outbox.handlers import HANDLERS, Handler, load_handlers
from outbox.tests.processes import outbox_processes  # noqa: F401 - a fixture for this package


@pytest.fixture
def register_handler():
    """Register handlers for the test only: `register_handler("Type", apply_fn, publications=())`."""
    load_handlers()  # the real ones first: a later load must not find their event types taken
    added: dict[str, Handler | None] = {}

    def register(event_type: str, apply, publications=()) -> Handler:
        added.setdefault(event_type, HANDLERS.get(event_type))
        HANDLERS[event_type] = Handler(event_type, apply, tuple(publications))
        return HANDLERS[event_type]

    yield register
    for event_type, previous in added.items():
        if previous is None:
            HANDLERS.pop(event_type, None)
        else:
            HANDLERS[event_type] = previous
