"""The chat page in a real browser: headless Chromium (Debian's, never downloaded) via Selenium.

The server runs in the test's event loop; the blocking WebDriver calls run in a
thread, and the test releases the scripted answer's second half from there,
so "the reply streams" is observed, not assumed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from botkit.errors import StoreError
from botkit.home import BotDefinition, BotHome
from botkit.messages import Turn
from botkit.testing import FakeDesk, write_bot
from tests.adapters.web_testing import KEY, ScriptedResponder, web_server
from tests.conftest import SHOP_FAQ

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]

pytestmark = pytest.mark.skipif(
    bool(MISSING) and not os.environ.get("CI"),
    reason=f"needs Debian's chromium and chromium-driver ({', '.join(MISSING)} missing); "
    "`apt-get install chromium chromium-driver` (.ci/run does)",
)

XSS = "Careful: <img src=x onerror=alert(1)> is **not** markup."


@contextmanager
def chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="botkit-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=420,900",  # a phone-sized window
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        driver.set_page_load_timeout(20)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str, timeout: float = 10) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition, what)


def messages(driver: Any) -> list[tuple[str, str]]:
    from selenium.webdriver.common.by import By

    items = driver.find_elements(By.CSS_SELECTOR, "#messages > li")
    return [
        (
            "user" if "user" in (item.get_attribute("class") or "") else "assistant",
            item.find_element(By.CSS_SELECTOR, ".body").text.strip(),
        )
        for item in items
    ]


def ask(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.ID, "message")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)  # the keyboard is enough: Enter sends


async def test_the_chat_page_streams_keeps_the_conversation_and_shows_html_as_text(
    shop: BotDefinition,
) -> None:
    if MISSING:
        pytest.fail(f"CI is set but the browser is missing: {', '.join(MISSING)}")
    gate = asyncio.Event()
    async with web_server([shop]) as server:
        pipeline = server.app.pipelines["shop"]
        pipeline.responder = ScriptedResponder(["We open ", "at nine on weekdays."], gate=gate)
        loop = asyncio.get_running_loop()

        def scenario() -> list[tuple[str, str]]:
            from selenium.common.exceptions import NoAlertPresentException
            from selenium.webdriver.common.by import By

            with chromium() as driver:
                driver.get(server.url + "/")
                wait_for(driver, lambda d: messages(d)[:1], "the welcome")
                assert "shop assistant" in messages(driver)[0][1]

                ask(driver, "When do you open?")
                # The first half is on the page while the second is still held back.
                wait_for(
                    driver,
                    lambda d: messages(d)[-1] == ("assistant", "We open"),
                    "the streamed first half",
                )
                loop.call_soon_threadsafe(gate.set)
                wait_for(
                    driver,
                    lambda d: messages(d)[-1] == ("assistant", "We open at nine on weekdays."),
                    "the whole answer",
                )

                pipeline.responder = ScriptedResponder([XSS])
                ask(driver, "Is <b>this</b> markup?")
                wait_for(driver, lambda d: "Careful" in messages(d)[-1][1], "the HTML answer")
                last = driver.find_elements(By.CSS_SELECTOR, "#messages > li")[-1]
                assert "<img src=x onerror=alert(1)>" in last.text
                assert last.find_element(By.TAG_NAME, "strong").text == "not"
                assert driver.find_elements(By.CSS_SELECTOR, "#messages img") == []
                assert messages(driver)[-2] == ("user", "Is <b>this</b> markup?")
                with pytest.raises(NoAlertPresentException):
                    driver.switch_to.alert.accept()  # a reply that ran script would have one

                driver.refresh()
                wait_for(driver, lambda d: len(messages(d)) == 5, "the conversation after reload")
                shown = messages(driver)

                # With the server gone, the page says so and keeps what was typed.
                asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
                ask(driver, "Are you there?")
                status = wait_for(
                    driver,
                    lambda d: (
                        d.find_element(By.ID, "status").is_displayed()
                        and d.find_element(By.ID, "status")
                    ),
                    "the unreachable-server message",
                )
                assert "Cannot reach the chat server" in status.text
                assert driver.find_element(By.ID, "message").get_attribute("value") == (
                    "Are you there?"
                )
                return shown

        try:
            shown = await asyncio.to_thread(scenario)
        finally:
            gate.set()  # a failed scenario must not hold the server's stop for its grace time
    assert shown[1:] == [
        ("user", "When do you open?"),
        ("assistant", "We open at nine on weekdays."),
        ("user", "Is <b>this</b> markup?"),
        ("assistant", "Careful: <img src=x onerror=alert(1)> is not markup."),
    ]


@contextmanager
def host_site(html: str) -> Iterator[str]:
    """Another site (another origin) whose page is `html`."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}/"
    finally:
        site.shutdown()
        site.server_close()
        thread.join()


async def test_the_embed_snippet_opens_the_chat_on_another_site(shop: BotDefinition) -> None:
    if MISSING:
        pytest.fail(f"CI is set but the browser is missing: {', '.join(MISSING)}")
    async with web_server([shop]) as server:
        snippet = (
            f'<script src="{server.url}/embed.js" data-bot="shop" data-label="Ask us"></script>'
        )

        def scenario() -> str:
            from selenium.webdriver.common.by import By

            page = f"<!doctype html><title>Shop</title><h1>Our shop</h1>{snippet}"
            with host_site(page) as url, chromium() as driver:
                driver.get(url)
                button = wait_for(
                    driver, lambda d: d.find_elements(By.XPATH, "//button[.='Ask us']"), "button"
                )[0]
                assert button.get_attribute("aria-expanded") == "false"
                button.click()
                assert button.get_attribute("aria-expanded") == "true"
                driver.switch_to.frame(driver.find_element(By.ID, "botkit-chat-frame"))
                wait_for(driver, lambda d: messages(d)[:1], "the welcome in the frame")
                ask(driver, "When are you open?")
                wait_for(driver, lambda d: len(messages(d)) == 3, "the answer in the frame")
                return str(messages(driver)[-1][1])

        answer = await asyncio.to_thread(scenario)
    assert answer == "We are open Monday to Friday, 9:00 to 17:00."


def entries(driver: Any) -> list[tuple[str, str, str]]:
    """Each item of the conversation, read at one instant: its kind (user, assistant,
    agent, notice), the name shown with it (a person's) and its text."""
    found: list[list[str]] = driver.execute_script(
        """
        return [...document.querySelectorAll("#messages > li")].map((item) => [
          ["user", "assistant", "agent", "notice"].find((k) => item.classList.contains(k)),
          item.querySelector(".who")?.innerText.trim() || "",
          item.querySelector(".body").innerText.trim(),
        ]);
        """
    )
    return [(kind, who, text) for kind, who, text in found]


async def test_a_persons_messages_appear_live_with_their_name(tmp_path: Path) -> None:
    if MISSING:
        pytest.fail(f"CI is set but the browser is missing: {', '.join(MISSING)}")
    handoff = '[handoff]\ndesk = "webhook"\nwebhook_url = "https://desk.example.com/hook"\n'
    write_bot(tmp_path, "shop", faq=SHOP_FAQ, settings=handoff)
    shop = BotHome(tmp_path).load_checked("shop")
    settings = {"handoff": {"webhook_secret": "s"}}
    async with web_server([shop], settings=settings, desks={"shop": FakeDesk()}) as server:
        headers = {"Authorization": f"Bearer {KEY}"}

        def scenario() -> list[tuple[str, str, str]]:
            def act(path: str, body: dict[str, str]) -> None:
                [waiting] = people.get("/v1/handoffs").json()["handoffs"]
                response = people.post(f"/v1/handoffs/{waiting['handoff_id']}/{path}", json=body)
                assert response.is_success, response.text

            with chromium() as driver, httpx.Client(base_url=server.url, headers=headers) as people:
                driver.get(server.url + "/")
                wait_for(driver, lambda d: entries(d)[:1], "the welcome")
                ask(driver, "/human")
                wait_for(driver, lambda d: "handing you over" in entries(d)[-1][2], "handoff")

                # Anna takes it and writes through the handoffs API: the page shows it live.
                act("take", {"agent": "Anna"})
                act("messages", {"agent": "Anna", "text": "Hi, I'm **Anna**. How can I help?"})
                wait_for(driver, lambda d: entries(d)[-1][0] == "agent", "Anna's message")

                ask(driver, "My parcel is late.")  # to Anna: no answer from the assistant
                wait_for(driver, lambda d: entries(d)[-1][0] == "user", "the relayed message")
                act("resolve", {})
                wait_for(driver, lambda d: entries(d)[-1][0] == "notice", "back to the bot")
                ask(driver, "When are you open?")
                wait_for(driver, lambda d: "Monday" in entries(d)[-1][2], "the bot again")
                return entries(driver)

        shown = await asyncio.to_thread(scenario)
    assert shown[1:] == [
        ("user", "", "/human"),
        ("assistant", "", shown[2][2]),
        ("notice", "", "Anna from our team has joined the conversation."),
        ("agent", "Anna", "Hi, I'm Anna. How can I help?"),
        ("user", "", "My parcel is late."),
        (
            "notice",
            "",
            "Anna has finished helping you: you're back with the shop assistant. Ask me anything.",
        ),
        ("user", "", "When are you open?"),
        ("assistant", "", "We are open Monday to Friday, 9:00 to 17:00."),
    ]


async def test_an_answer_finished_later_takes_its_place_on_the_page(shop: BotDefinition) -> None:
    if MISSING:
        pytest.fail(f"CI is set but the browser is missing: {', '.join(MISSING)}")
    async with web_server([shop]) as server:
        store = server.app.store
        stored = store.append
        failures = [StoreError("the store went away mid-answer")]

        async def append_failing_once(key: str, turns: Sequence[Turn], **fields: Any) -> None:
            if turns[0].role == "assistant" and failures:
                raise failures.pop()
            await stored(key, turns, **fields)

        store.append = append_failing_once  # type: ignore[method-assign]

        def scenario() -> list[tuple[str, str, str]]:
            from selenium.webdriver.common.by import By

            with chromium() as driver:
                driver.get(server.url + "/")
                wait_for(driver, lambda d: entries(d)[:1], "the welcome")
                ask(driver, "When are you open?")
                status = wait_for(
                    driver,
                    lambda d: d.find_element(By.ID, "status").is_displayed(),
                    "the interrupted answer",
                )
                assert status
                assert "appear here" in driver.find_element(By.ID, "status").text
                # The inbox tries the message again; its answer arrives live, in place.
                wait_for(
                    driver,
                    lambda d: not d.find_elements(By.CSS_SELECTOR, "#messages .waiting"),
                    "the answer, finished later",
                    timeout=20,
                )
                assert not driver.find_element(By.ID, "status").is_displayed()
                return entries(driver)

        shown = await asyncio.to_thread(scenario)
    assert shown[1:] == [
        ("user", "", "When are you open?"),
        ("assistant", "", "We are open Monday to Friday, 9:00 to 17:00."),
    ]
