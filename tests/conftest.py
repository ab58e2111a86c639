from orders.tests.conftest import queue_topic  # noqa: F401 - fixture: the flash-sale queue's topic of a test's own
