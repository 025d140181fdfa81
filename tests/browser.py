"""Headless Chromium for the tests, driven by selenium with Debian's chromium-driver.

``make test`` installs ``chromium`` and ``chromium-driver`` when they are missing
(tests/install_chromium.sh); where that was not possible the browser tests are skipped and
say why, never faked."""

from __future__ import annotations

import shutil
import tempfile

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


def chromium_paths() -> tuple[str, str]:
    """(chromium, chromedriver), or the test is skipped naming what is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        missing = [n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p]
        pytest.skip(
            f"Chromium is not installed ({', '.join(missing)} not on PATH): "
            "apt-get install -y chromium chromium-driver (tests/install_chromium.sh)"
        )
    return browser, driver


def start_chromium():
    """A fresh headless Chromium (its own profile folder) that records console messages."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='genixer-chromium-')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def console_errors(driver) -> list[dict]:
    """The console's errors since the last call (warnings and info left out)."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
