"""Headless Chromium for report tests: Debian's `chromium` driven by its `chromium-driver` through Selenium.

Nothing is downloaded at test time: the browser and driver are the system's (CI installs them, see .ci/run).
When they are missing, one `apt-get install` is tried (as root); if that fails too, the test fails (never skips).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.harness.debian import apt_install

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DEBIAN_PACKAGES = ("chromium", "chromium-driver")
WINDOW = "1280,1800"


def browser_installed() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


def require_browser() -> None:
    if browser_installed():
        return
    problem = apt_install(DEBIAN_PACKAGES)
    if not browser_installed():
        # A failure, not a skip: the report checks prove nothing unless a browser really opens the page.
        pytest.fail(f"headless Chromium unavailable ({CHROMIUM}, {CHROMEDRIVER}) and not installable: {problem}")


@contextmanager
def headless_chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium whose console messages are readable with `driver.get_log("browser")`."""
    require_browser()
    # Selenium must not look for (or fetch) a browser or driver of its own.
    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WINDOW}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """Console messages at SEVERE level (errors, failed loads, blocked by the page's CSP)."""
    entries: list[dict[str, object]] = driver.get_log("browser")  # type: ignore[no-untyped-call]  # untyped in Selenium
    return [str(entry["message"]) for entry in entries if entry.get("level") == "SEVERE"]
