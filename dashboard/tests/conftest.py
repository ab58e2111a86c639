from orders.tests.conftest import queue_topic  # noqa: F401 - fixture: the queue's topic of this test's own
