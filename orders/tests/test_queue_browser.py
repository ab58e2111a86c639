"""`/demo/flash-sale/` in headless Chromium: sign in, Buy, see the position and then the live result.

Runs with `make test-browser` (marker `browser`). Needs Debian's `chromium` and `chromium-driver`
(`apt-get install -y chromium chromium-driver`) and Selenium (requirements-dev.txt); skipped, with
that hint, only when Chromium is absent. The page is served by pytest-django's live server (WSGI),
the stream by a real uvicorn child process, the answers by a real `run_consumer checkout` child.
"""

from __future__ import annotations

import shutil

import pytest
from django.test import override_settings

from common.sse.views import sse_token_issue
from orders.models import QueueRequest
from orders.queue.admission import queue_request_enqueue
from orders.tests.queue_support import bulk_users, flash_product
from tests.support.processes import child_env, start_sse_server
from tests.support.sse import wait_for_live_delivery
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery"  # bulk_users' password


def chromium_paths() -> tuple[str, str]:
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("Chromium is not installed: apt-get install -y chromium chromium-driver")
    return browser, driver


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install -r requirements-dev.txt (selenium)")
    binary, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


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
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    product = flash_product(stock=1, price=12_000)
    first, second = bulk_users(2)
    wait = WebDriverWait(browser, 20)
    text = lambda element_id: browser.find_element(By.ID, element_id).text  # noqa: E731

    def sign_in(user) -> None:
        browser.find_element(By.ID, "username").clear()
        browser.find_element(By.ID, "username").send_keys(user.username)
        browser.find_element(By.ID, "password").clear()
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.ID, "signin").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "signin-state"), f"signed in as {user.username}"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "sse-state"), "connected"))

    browser.get(f"{stack}/demo/flash-sale/")
    assert browser.title == "Flash sale"
    sign_in(first)
    Select(browser.find_element(By.ID, "product")).select_by_value(str(product.pk))
    browser.find_element(By.ID, "buy").click()

    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "COMPLETED"))
    request = QueueRequest.objects.select_related("order").get(user=first)
    assert text("position") == "1"
    assert text("result") == f"Order {request.order.order_number} reserved: 12000 KRW. Pay within the hold time."
    assert browser.find_element(By.ID, "result").get_attribute("data-via") == "sse"  # not the polling fallback

    sign_in(second)
    browser.find_element(By.ID, "buy").click()
    # refused at admission while the consumer's sold-out flag lives, else queued and answered SOLD_OUT
    wait.until(lambda _: "SOLD_OUT" in text("status") + text("result"))
    assert (text("status"), text("result")) in {
        ("SOLD_OUT", "This product is sold out."),
        ("FAILED", "Not this time: SOLD_OUT"),
    }
    assert not QueueRequest.objects.filter(user=second, status="COMPLETED").exists()
