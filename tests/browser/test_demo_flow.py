"""The storefront demo end to end in headless Chromium, against the real processes: an SSE server
(uvicorn), the checkout consumer, the CDC relay and the outbox consumer as children of the test.

One shopper: sees the stock live, waits in line behind three others while the operator has paused
the queue (the number ahead shown live), gets the order with its hold countdown, pays with points,
and sees it turn CONFIRMED through relay -> Kafka -> outbox consumer -> SSE. Then a shopper without
enough points, the last unit, and a shopper told "sold out", each in words a shopper understands.
"""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

from common.sse.views import sse_token_issue
from orders.models import Order, QueueRequest
from orders.queue.admission import queue_request_enqueue
from orders.queue.controls import queue_pause, queue_resume
from orders.tests.queue_support import bulk_users, flash_product
from payments.services import payment_process
from shop.models import PointWallet
from tests.browser.chrome import attribute_is, text_is
from tests.support.processes import child_env, start_sse_server
from tests.support.sse import wait_for_live_delivery
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery"  # bulk_users' password


@pytest.fixture
def stack(live_server, outbox_processes, checkout_consumer, children):
    """Every process the flow needs, on the test's own topics; one purchase paid and CONFIRMED end
    to end before the browser starts, so every consumer is assigned and the relay is tailing."""
    port = start_sse_server(children, child_env(SSE_ALLOWED_ORIGINS=live_server.url))
    checkout = checkout_consumer()
    outbox_processes.start_relay()
    outbox_processes.start_consumer()
    outbox_processes.wait_relay_active()
    (warm_user,) = bulk_users(1)
    wait_for_live_delivery(port, warm_user.pk, sse_token_issue(user_id=warm_user.pk))
    warm = queue_request_enqueue(user_id=warm_user.pk, product_id=flash_product(stock=1).pk).request
    wait_until(
        lambda: QueueRequest.objects.filter(pk=warm.pk, status="COMPLETED").exists(),
        timeout=60,
        what="the checkout consumer",
        details=checkout.tail,
    )
    order = QueueRequest.objects.select_related("order").get(pk=warm.pk).order
    payment_process(user_id=warm_user.pk, order_id=order.pk, amount=order.final_amount)
    wait_until(
        lambda: Order.objects.filter(pk=order.pk, status="CONFIRMED").exists(),
        timeout=60,
        what="the outbox pipeline",
        details=outbox_processes.logs,
    )
    with override_settings(SSE_PUBLIC_URL=f"http://127.0.0.1:{port}"):
        yield live_server.url


def test_the_whole_flow_as_a_shopper_sees_it(stack, browser, screenshot):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    product = flash_product(stock=5, price=12_000)
    shopper, poor, last, late = bulk_users(4)
    PointWallet.objects.filter(user=poor).update(balance=5_000)
    others = bulk_users(3)
    wait = WebDriverWait(browser, 30)
    text = lambda element_id: browser.find_element(By.ID, element_id).text  # noqa: E731
    row = f'.product[data-product="{product.pk}"]'
    available = lambda: browser.find_element(By.CSS_SELECTOR, f"{row} .available").text  # noqa: E731
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
    wait.until(attribute_is((By.ID, "stock-state"), "data-state", "open"))
    assert available() == "5"

    # three shoppers in line before ours, the operator has paused the queue
    queue_pause(product_id=product.pk)
    for other in others:
        queue_request_enqueue(user_id=other.pk, product_id=product.pk)
    sign_in(shopper)
    assert text("balance") == "1,000,000 points"
    browser.find_element(*buy).click()
    wait.until(text_is((By.ID, "status"), "QUEUED"))
    assert text("position") == "4"
    wait.until(text_is((By.ID, "ahead"), "3 ahead of you"))
    screenshot("1-in-line")

    queue_resume(product_id=product.pk)  # the consumer answers all four in admission order
    wait.until(text_is((By.ID, "status"), "COMPLETED"))
    order = QueueRequest.objects.select_related("order").get(user=shopper).order
    assert browser.find_element(By.ID, "result").get_attribute("data-via") == "sse"
    assert text("order-number") == f"Order {order.order_number}"
    assert text("order-status") == "PENDING_PAYMENT"
    assert re.fullmatch(r"· hold ends in (9:[0-5]\d|10:00)", text("countdown")), text("countdown")
    wait.until(lambda _: available() == "1")  # 5 - 4 reserved, live
    screenshot("2-reserved")

    browser.find_element(By.ID, "pay").click()
    wait.until(text_is((By.ID, "order-status"), "CONFIRMED"))  # relay -> Kafka -> outbox consumer -> SSE
    assert text("result") == f"Payment confirmed: order {order.order_number} is yours."
    wait.until(text_is((By.ID, "balance"), "988,000 points"))
    assert Order.objects.get(pk=order.pk).status == "CONFIRMED"
    screenshot("3-confirmed")

    sign_in(poor)
    browser.find_element(*buy).click()
    wait.until(text_is((By.ID, "status"), "FAILED"))
    assert text("result") == (
        "Not enough points: this costs 12,000 points and you have 5,000 points. Top up your points and try again."
    )

    sign_in(last)
    browser.find_element(*buy).click()
    wait.until(text_is((By.ID, "status"), "COMPLETED"))
    wait.until(lambda _: available() == "0")
    wait.until(lambda _: browser.find_element(By.CSS_SELECTOR, f"{row} .badge").is_displayed())

    sign_in(late)
    browser.find_element(*buy).click()
    # refused at admission while the consumer's sold-out flag lives, else queued and answered SOLD_OUT
    wait.until(lambda _: text("status") in ("SOLD_OUT", "FAILED"))
    assert text("result") == "Sold out: every unit has been taken. Better luck next sale!"
    screenshot("4-sold-out")
    assert QueueRequest.objects.filter(product=product, status="COMPLETED").count() == 5
