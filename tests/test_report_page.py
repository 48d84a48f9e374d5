"""The HTML report in a real browser (Debian's headless Chromium via Selenium): it shows
its figures, charts and groups, loads nothing from elsewhere, and logs no error."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botkit.home import BotDefinition
from botkit.report import gather
from botkit.report_page import page
from botkit.stores import MemoryStore
from tests.adapters.test_web_browser import CHROMEDRIVER, CHROMIUM, pytestmark  # noqa: F401
from tests.test_report import NOW, generated_week


@contextmanager
def chromium_logging() -> Iterator[Any]:
    """Headless Chromium that keeps the page's console messages."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="botkit-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"):
        options.add_argument(flag)
    options.add_argument("--disable-background-networking")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        driver.set_page_load_timeout(20)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


async def test_the_page_opens_without_console_errors(shop: BotDefinition, tmp_path: Path) -> None:
    store = MemoryStore()
    await generated_week(store, shop)
    html = page(await gather(store, shop, days=7, now=NOW))
    # Nothing is loaded from elsewhere: no script at all, no link or source but data:.
    assert "<script" not in html
    assert re.findall(r'(?:src|href)="(?!data:|#)', html) == []
    path = tmp_path / "report.html"
    path.write_text(html, "utf-8")

    broken = tmp_path / "broken.html"
    broken.write_text('<img src="missing.png"><script>console.error("seen")</script>', "utf-8")

    def look() -> tuple[str, int, str, list[dict[str, Any]], list[dict[str, Any]]]:
        from selenium.webdriver.common.by import By

        with chromium_logging() as driver:
            driver.get(path.as_uri())
            title = driver.title
            charts = driver.find_elements(By.CSS_SELECTOR, ".charts svg")
            groups = driver.find_element(By.CSS_SELECTOR, "ol").text
            console = driver.get_log("browser")
            driver.get(broken.as_uri())  # the console is watched: errors do show
            return title, len(charts), groups, console, driver.get_log("browser")

    title, charts, groups, console, errors = await asyncio.to_thread(look)
    assert title == "shop: what the bot is doing"
    assert charts == 4
    assert groups.splitlines()[0].startswith("12× gift cards? · ")
    assert [entry for entry in console if entry["level"] in ("SEVERE", "WARNING")] == []
    assert len([entry for entry in errors if entry["level"] == "SEVERE"]) == 2
