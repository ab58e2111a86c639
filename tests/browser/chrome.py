"""Headless Chromium for the browser tests (marker `browser`, part of `make test`).

Debian's `chromium` and `chromium-driver` (installed by `scripts/devservices.py install-packages`)
with Selenium (requirements-dev.txt). Without Chromium a test is skipped on a developer's machine
with the command to run, and FAILS in CI (`CI` set): CI must never pass by not running them.
Screenshots go to `test-output/browser/` in the repository (git-ignored), one PNG per step.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output" / "browser"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1200,1000",
)


def chromium_paths() -> tuple[str, str]:
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        message = "Chromium is not installed: apt-get install -y chromium chromium-driver (make packages)"
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {message}")
        pytest.skip(message)
    return browser, driver


def start_chromium(user_data_dir: Path):
    if os.environ.get("CI"):
        from selenium import webdriver
    else:
        webdriver = pytest.importorskip("selenium.webdriver", reason="pip install -r requirements-dev.txt (selenium)")
    binary, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={user_data_dir}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.implicitly_wait(0)
    return driver


@pytest.fixture
def browser(tmp_path) -> Iterator:
    driver = start_chromium(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot(browser, request) -> Callable[[str], Path]:
    """`screenshot("step")` -> test-output/browser/<test name>/step.png"""
    folder = OUTPUT / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)

    def take(step: str) -> Path:
        path = folder / f"{step}.png"
        browser.save_screenshot(str(path))
        return path

    return take


def text_is(locator: tuple[str, str], expected: str) -> Callable:
    """An exact-text condition (Selenium's text_to_be_present_in_element is a substring match:
    "not connected" contains "connected")."""

    def check(driver) -> bool:
        elements = driver.find_elements(*locator)
        return bool(elements) and elements[0].text == expected

    return check


def attribute_is(locator: tuple[str, str], name: str, expected: str) -> Callable:
    def check(driver) -> bool:
        elements = driver.find_elements(*locator)
        return bool(elements) and elements[0].get_attribute(name) == expected

    return check
