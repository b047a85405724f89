"""Headless Chromium for the browser tests: Debian's ``chromium`` driven through its ``chromedriver``.

Nothing is downloaded: the browser and driver come from the system (``.ci/run`` installs them); when
they are missing the tests fail on CI (``CI`` set: .ci/run should have installed them) and are skipped
with the install command elsewhere. Screenshots go to ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT, start_celery_worker

CHROMIUM = os.environ.get("SOULSAI_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SOULSAI_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"


def _start_browser(downloads: Path):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        reason = (
            f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
            "apt-get install chromium chromium-driver"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads.mkdir(exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--disable-extensions",
        "--no-first-run",
    ):
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False,
         "safebrowsing.enabled": False},
    )  # fmt: skip
    # An explicit driver path: Selenium Manager is never asked to fetch a browser or a driver.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(180)  # the download page may build the wheel first, on a loaded machine
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    return driver


@pytest.fixture
def browser(tmp_path):
    driver = _start_browser(tmp_path / "downloads")
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shared_browser(tmp_path_factory):
    """One Chromium for a module's tests (each starts from a blank page with no cookies)."""
    driver = _start_browser(tmp_path_factory.mktemp("downloads"))
    yield driver
    driver.quit()


@pytest.fixture
def module_browser(shared_browser):
    yield shared_browser
    shared_browser.delete_all_cookies()  # the portal's, where the test left the browser
    shared_browser.get("about:blank")


def screenshot(driver, name: str, *, width: int | None = None) -> Path:
    """Save the page as test-artifacts/screenshots/<name>.png (at a phone's width when ``width`` is given)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if width is not None:
        size = driver.get_window_size()
        driver.set_window_size(width, 1400)
        driver.save_screenshot(str(path))
        driver.set_window_size(size["width"], size["height"])
    else:
        driver.save_screenshot(str(path))
    return path


@pytest.fixture
def fast_worker(transactional_db, tmp_path, monkeypatch):
    """A Celery worker with beat whose live stats and leaderboards refresh every few seconds."""
    monkeypatch.setenv("SOULSAI_SNAPSHOT_SECONDS", "3")
    monkeypatch.setenv("SOULSAI_LEADERBOARD_SECONDS", "3")
    proc = start_celery_worker(tmp_path)
    yield proc
    proc.stop()
