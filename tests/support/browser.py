"""Headless Chromium from Debian's packages (``chromium``, ``chromium-driver``, installed
by ``make tools``), driven by Selenium: no browser is downloaded at run time, and a
missing one fails the test (never a skip)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{missing} missing: run `make tools` (apt: chromium chromium-driver)")


@contextmanager
def chromium(width: int = 1280, height: int = 800) -> Iterator[WebDriver]:
    """A headless Chromium whose viewport is exactly ``width`` x ``height`` CSS pixels at
    device scale 1, keeping the browser console for :func:`console_errors`."""
    _require_browser()
    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        "--force-device-scale-factor=1",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
    try:
        set_viewport(driver, width, height)
        yield driver
    finally:
        driver.quit()


def set_viewport(driver: WebDriver, width: int, height: int) -> None:
    """The page's viewport (not the window's outer size)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


def console_errors(driver: WebDriver, allowed: Callable[[str], bool]) -> list[str]:
    """The SEVERE browser-console entries since the last call, less those ``allowed``."""
    entries: list[dict[str, Any]] = driver.get_log("browser")
    return [e["message"] for e in entries if e["level"] == "SEVERE" and not allowed(e["message"])]


def wait_for(
    driver: WebDriver,
    css: str,
    timeout: float = 20.0,
    check: Callable[[WebElement], bool] | None = None,
) -> WebElement:
    """The first element matching ``css`` (and ``check``) once there; fails on timeout."""

    def found(d: WebDriver) -> WebElement | bool:
        els = d.find_elements(By.CSS_SELECTOR, css)
        return next((e for e in els if check is None or check(e)), False)

    wait = WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))
    el: WebElement = wait.until(found, f"no {css!r} within {timeout}s")
    return el
