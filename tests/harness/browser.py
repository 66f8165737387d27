"""Headless Chromium for report tests: Debian's `chromium` driven by its `chromium-driver` through Selenium.

Nothing is downloaded at test time: the browser and driver are the system's (CI installs them, see .ci/run).
When they are missing, one `apt-get install` is tried (as root); a test is skipped only if that fails too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DEBIAN_PACKAGES = ("chromium", "chromium-driver")
INSTALL_TIMEOUT_SECONDS = 900
WINDOW = "1280,1800"


def browser_installed() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


def install_browser() -> str:
    """Try to install the Debian packages; '' when done, else why not."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "not root or no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *DEBIAN_PACKAGES]):
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS, check=False
        )
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[-300:]}"
    return ""


def require_browser() -> None:
    if browser_installed():
        return
    problem = install_browser()
    if not browser_installed():
        pytest.skip(f"headless Chromium unavailable ({CHROMIUM}, {CHROMEDRIVER}) and not installable: {problem}")


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
