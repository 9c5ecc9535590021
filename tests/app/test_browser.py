"""The web app in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by Selenium; nothing is downloaded) opens the page, uploads a clip, stylizes it, waits for
the result and downloads it. Every request the page makes must stay on this computer.

Skipped where Chromium, its driver or Selenium is missing (``.ci/run`` installs them where it
can; docs/app.md). ``RECONET_APP_SCREENSHOT=path.png`` also saves the finished page there (how
docs/images/app_stylize.png is made).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from app_helpers import require_app_extra, start_app

pytestmark = [pytest.mark.slow, pytest.mark.browser]

LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "chrome-extension", "devtools"}


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("needs Chromium and chromedriver (apt install chromium chromium-driver)")
    pytest.importorskip("selenium")
    return browser, driver


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_upload_stylize_and_download_in_chromium(tmp_path: Path, videos_dir: Path, probe) -> None:
    require_app_extra()
    browser, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    clip = videos_dir / "mdn_cc0_flower.mp4"
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    app = start_app(tmp_path)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1500", "--mute-audio"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(app.url)
        upload = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#video_in input[type=file]"), 60, "the upload field")
        upload[0].send_keys(str(clip))
        # the first frame's preview appears on upload
        _wait(lambda: "first frame in" in _value(driver, "#video_note textarea"), 120, "the first-frame preview")
        button = driver.find_element(By.CSS_SELECTOR, "#stylize_video")
        driver.execute_script("arguments[0].scrollIntoView(); arguments[0].click();", button)
        _wait(lambda: "150 frames" in _value(driver, "#video_note textarea"), 300, "the stylized clip")
        _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#video_out video[src]"), 60, "the result player")
        link = _wait(lambda: [e for e in driver.find_elements(By.CSS_SELECTOR, "#video_download") if e.is_displayed()], 30, "the download button")
        driver.execute_script("arguments[0].scrollIntoView(); arguments[0].click();", link[0])
        saved = _wait(
            lambda: [p for p in downloads.iterdir() if p.suffix == ".mp4" and not p.name.endswith(".crdownload")],
            60,
            "the downloaded file",
        )
        time.sleep(1.0)  # let Chromium close the file
        facts = probe(saved[0])
        assert facts["frames"] == 150 and facts["audio_codec"] == "aac"
        screenshot = tmp_path / "app.png"
        driver.execute_script("window.scrollTo(0, 0);")
        driver.save_screenshot(str(screenshot))
        if os.environ.get("RECONET_APP_SCREENSHOT"):
            shutil.copy(screenshot, os.environ["RECONET_APP_SCREENSHOT"])
        outside = sorted(
            {
                url
                for url in _requested_urls(driver)
                if urlparse(url).scheme not in LOCAL_SCHEMES and urlparse(url).hostname not in ("127.0.0.1", "localhost")
            }
        )
        assert not outside, f"the page fetched from outside this computer: {outside[:5]}"
    finally:
        driver.quit()
        assert app.stop() == 0


def _value(driver, selector: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return (found[0].get_attribute("value") or "") if found else ""


def _requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls
