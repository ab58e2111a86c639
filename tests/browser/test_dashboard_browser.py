"""The sale dashboard in headless Chromium: reached from the admin index, it renders, its figures
follow a purchase made over the API, and pause/resume and the sold-out flag work from it."""

from __future__ import annotations

import pytest
import requests
from rest_framework_simplejwt.tokens import AccessToken

from common.audit import audit_invariants
from orders.models import FlashSaleControl
from orders.queue.controls import queue_flags
from orders.tests.helpers import fund
from orders.tests.queue_support import flash_product
from shop.tests.factories import UserFactory
from tests.browser.chrome import attribute_is, text_is

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_dashboard_shows_the_sale_and_drives_the_queue(live_server, queue_topic, browser, screenshot):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    product = flash_product(stock=10, price=1_000)
    buyer = UserFactory()
    fund(buyer, 1_000_000)  # with its ledger row: the auditor checks wallets against ledgers
    operator = UserFactory(is_staff=True, is_superuser=True)
    operator.set_password("operator-password-1")
    operator.save()
    audit_invariants()
    # the page refreshes its figures every 2.5 s: an element read during an update is read again
    wait = WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))
    row = f'#products tr[data-product="{product.pk}"]'

    def click(action: str) -> None:
        button = (By.CSS_SELECTOR, f'{row} button[data-action="{action}"]')
        wait.until(lambda _: browser.find_element(*button).click() or True)

    cell = lambda name: browser.find_element(By.CSS_SELECTOR, f"{row} .{name}").text  # noqa: E731

    browser.get(f"{live_server.url}/admin/login/?next=/admin/")
    browser.find_element(By.ID, "id_username").send_keys(operator.username)
    browser.find_element(By.ID, "id_password").send_keys("operator-password-1")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    link = wait.until(lambda _: browser.find_elements(By.LINK_TEXT, "Live flash-sale dashboard"))  # the admin index
    link[0].click()
    wait.until(attribute_is((By.ID, "dash-status"), "data-state", "live"))
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-rates canvas")  # uPlot drew its chart
    wait.until(lambda _: browser.find_elements(By.CSS_SELECTOR, row) and cell("remaining") == "10")
    wait.until(lambda _: (cell("reserved"), cell("sold"), cell("paused"), cell("flag")) == ("0", "0", "running", "-"))
    assert browser.find_element(By.ID, "audit-state").text == "all invariants hold"

    # a purchase over the API, as a shopper would make it
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {AccessToken.for_user(buyer)}"
    order = api.post(
        f"{live_server.url}/api/v1/checkout/initiate",
        json={"directOrderItems": [{"productId": product.pk, "quantity": 2}]},
        timeout=10,
    ).json()["data"]
    paid = api.post(
        f"{live_server.url}/api/v1/payments/process",
        json={"orderId": order["orderId"], "amount": order["finalAmount"]},
        timeout=10,
    )
    assert paid.status_code == 200, paid.text
    wait.until(lambda _: cell("remaining") == "8")
    wait.until(lambda _: cell("sold") == "2")  # shared through Redis for up to 10 s
    wait.until(lambda _: browser.find_element(By.ID, "tile-payments").text not in ("-", "0.00"))
    assert browser.find_element(By.ID, "tile-orders").text not in ("-", "0.00")
    screenshot("dashboard")

    # resume sends the consumer a wake-up message: on this test's own topic (queue_topic)
    click("pause")
    wait.until(lambda _: cell("paused") == "paused")
    assert "paused" in browser.find_element(By.ID, "control-message").text
    assert FlashSaleControl.objects.get(product=product).paused

    click("resume")
    wait.until(lambda _: cell("paused") == "running")
    assert not FlashSaleControl.objects.get(product=product).paused

    click("close")
    wait.until(lambda _: cell("flag") == "operator")
    assert queue_flags(product.pk).closed_flag
    click("reopen")
    wait.until(lambda _: cell("flag") == "-")
    assert not queue_flags(product.pk).closed_flag
    cleared = f"Product {product.pk} sold-out flag cleared: requests are admitted."
    wait.until(text_is((By.ID, "control-message"), cleared))
