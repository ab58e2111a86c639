from outbox.tests.processes import outbox_processes  # noqa: F401 - fixture: relay + outbox consumer children
from tests.browser.chrome import browser, screenshot  # noqa: F401 - fixtures for this package
