"""`/demo/flash-sale/` in headless Chromium: sign in, Buy, see the position and then the live result.

Marker `browser` (in `make test`; alone: `make test-browser`); Chromium and the screenshots: see
tests/browser/chrome.py. The page is served by pytest-django's live server (WSGI), the streams by a
real uvicorn child process, the answers by a real `run_consumer checkout` child.

Waits are on exact conditions: the page enables Buy only once the shopper's stream is open
(`#sse-state[data-state=open]`). The old wait, "connected" *contained in* `#sse-state`, was already
true for the initial "not connected": one run in six clicked Buy before the stream had opened, the
answer was published to nobody, and the page got it from its polling fallback instead.
"""

from __future__ import annotations

import pytest
from django.test import override_settings

from common.sse.views import sse_token_issue
from orders.models import QueueRequest
from orders.queue.admission import queue_request_enqueue
from orders.tests.queue_support import bulk_users, flash_product
from tests.browser import chrome
from tests.browser.chrome import attribute_is, text_is
from tests.support.processes import child_env, start_sse_server
from tests.support.sse import wait_for_live_delivery
from tests.support.waiting import wait_until

browser = chrome.browser  # the fixture (headless Chromium; fails in CI when Chromium is missing)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery"  # bulk_users' password


@pytest.fixture
def stack(live_server, checkout_consumer, children):
    """The SSE process (allowing the live server's origin) and the consumer, on our own topic. Request it
    before `browser`, so the browser closes its stream before uvicorn shuts down."""
    port = start_sse_server(children, child_env(SSE_ALLOWED_ORIGINS=live_server.url))
    consumer = checkout_consumer()
    warm_user = bulk_users(1)[0]
    wait_for_live_delivery(port, warm_user.pk, sse_token_issue(user_id=warm_user.pk))
    # one request answered end to end: the consumer is up and assigned before the browser buys
    warm_up = queue_request_enqueue(user_id=warm_user.pk, product_id=flash_product(stock=1).pk)
    wait_until(
        lambda: QueueRequest.objects.filter(pk=warm_up.request.pk, status="COMPLETED").exists(),
        timeout=60,
        what="the consumer",
        details=consumer.tail,
    )
    with override_settings(SSE_PUBLIC_URL=f"http://127.0.0.1:{port}"):
        yield live_server.url


def test_a_shopper_buys_and_sees_the_live_result_then_the_next_one_is_told_sold_out(stack, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    product = flash_product(stock=1, price=12_000)
    first, second = bulk_users(2)
    wait = WebDriverWait(browser, 20)
    text = lambda element_id: browser.find_element(By.ID, element_id).text  # noqa: E731
    buy = (By.CSS_SELECTOR, f'button.buy[data-product="{product.pk}"]')

    def sign_in(user) -> None:
        browser.find_element(By.ID, "username").clear()
        browser.find_element(By.ID, "username").send_keys(user.username)
        browser.find_element(By.ID, "password").clear()
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.ID, "signin").click()
        wait.until(text_is((By.ID, "signin-state"), f"signed in as {user.username}"))
        wait.until(attribute_is((By.ID, "sse-state"), "data-state", "open"))
        wait.until(lambda _: browser.find_element(*buy).is_enabled())

    browser.get(f"{stack}/demo/flash-sale/")
    assert browser.title == "Flash sale"
    sign_in(first)
    browser.find_element(*buy).click()

    wait.until(text_is((By.ID, "status"), "COMPLETED"))
    request = QueueRequest.objects.select_related("order").get(user=first)
    assert text("position") == "1"
    assert text("result") == f"Reserved! Order {request.order.order_number}: pay 12,000 points before the hold ends."
    assert browser.find_element(By.ID, "result").get_attribute("data-via") == "sse"  # not the polling fallback

    sign_in(second)
    browser.find_element(*buy).click()
    # refused at admission while the consumer's sold-out flag lives, else queued and answered SOLD_OUT
    wait.until(lambda _: text("status") in ("SOLD_OUT", "FAILED"))
    assert text("result") == "Sold out: every unit has been taken. Better luck next sale!"
    assert not QueueRequest.objects.filter(user=second, status="COMPLETED").exists()
