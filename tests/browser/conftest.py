from orders.tests.conftest import (  # noqa: F401 - fixtures: the queue's topic and consumer
    checkout_consumer,
    queue_topic,
)
from outbox.tests.conftest import outbox_processes  # noqa: F401 - fixture: relay + outbox consumer children
from tests.browser.chrome import browser, screenshot  # noqa: F401 - fixtures for this package
