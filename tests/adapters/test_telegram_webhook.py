"""The Telegram channel in webhook mode, served by `botkit.serve.serve` on the shared HTTP
server: updates posted with and without the right secret, and malformed ones."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from botkit.adapters import ServeOptions
from botkit.app import BotApp
from botkit.home import BotDefinition
from botkit.serve import serve
from tests.adapters.telegram_api import (
    PRIVATE_CHAT,
    FakeBotAPI,
    message_update,
    telegram_settings,
    text_update,
)
from tests.loopback import free_port

OPEN = "We are open Monday to Friday, 9:00 to 17:00."
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@pytest.fixture(autouse=True)
def timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def api() -> Any:
    async with FakeBotAPI() as server:
        yield server


@asynccontextmanager
async def serving(api: FakeBotAPI, bot: BotDefinition, **telegram: Any) -> AsyncIterator[str]:
    """`botkit serve` with `--webhook`, in this process; yields the bot's webhook URL.
    Leaving the block sends SIGTERM, which must stop it cleanly."""
    port = free_port()
    options = ServeOptions(
        channels=("telegram",), port=port, webhook_url=f"http://127.0.0.1:{port}/telegram"
    )
    async with BotApp(settings=telegram_settings(api, **telegram), bots=[bot]) as app:
        task = asyncio.create_task(serve(app, options))
        try:
            await api.until(lambda: task.done() or api.webhook)
            if task.done():
                task.result()
            assert api.webhook is not None
            yield api.webhook[0]
        finally:
            if not task.done():
                os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(task, 15)


async def test_webhook_mode_registers_the_webhook_and_answers(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as url:
        assert url.endswith("/telegram/shop")
        url, secret = api.webhook or ("", None)
        assert secret is not None and len(secret) >= 32
        assert api.called("setWebhook")[0].params["allowed_updates"] == [
            "message",
            "callback_query",
        ]
        response = await api.deliver(text_update("When are you open?"))
        assert response.status_code == 200
        await api.until(lambda: api.chat(PRIVATE_CHAT))
    assert [m.text for m in api.chat(PRIVATE_CHAT)] == [OPEN]
    assert not api.called("getUpdates")  # no polling in webhook mode
    assert not api.called("deleteWebhook")  # Telegram keeps queueing while we restart


async def test_the_configured_secret_is_used(api: FakeBotAPI, shop: BotDefinition) -> None:
    async with serving(api, shop, webhook_secret="our-shared_secret"):
        assert api.webhook is not None and api.webhook[1] == "our-shared_secret"


async def test_updates_without_the_right_secret_are_refused(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as url, httpx.AsyncClient() as client:
        update = text_update("When are you open?")
        missing = await client.post(url, json=update)
        wrong = await client.post(url, json=update, headers={SECRET_HEADER: "guess"})
        assert (missing.status_code, wrong.status_code) == (401, 403)
        await asyncio.sleep(0.2)
        assert api.messages == []
        assert (await api.deliver(update)).status_code == 200
        await api.until(lambda: api.chat(PRIVATE_CHAT))


async def test_malformed_updates_are_a_400_and_the_bot_carries_on(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    # Not a JSON object at all; one whose fields are wrong is acknowledged, with a warning
    # (test_telegram_payloads.py), as Telegram would only send it again.
    async with serving(api, shop) as url, httpx.AsyncClient() as client:
        assert api.webhook is not None
        headers = {SECRET_HEADER: str(api.webhook[1]), "content-type": "application/json"}
        bodies = [
            b"{not json",
            b"",
            b"[1, 2]",
            b"[" * 100_000,
            "\udcff".encode("utf-8", "surrogatepass"),
        ]
        statuses = [(await client.post(url, content=body, headers=headers)).status_code
                    for body in bodies]  # fmt: skip
        assert statuses == [400] * len(bodies)
        assert (await client.get(url, headers=headers)).status_code == 405
        huge = b'{"update_id": 9, "padding": "' + b"x" * 2_000_000 + b'"}'
        assert (await client.post(url, content=huge, headers=headers)).status_code == 413
        assert (await api.deliver(text_update("When are you open?"))).status_code == 200
        await api.until(lambda: api.chat(PRIVATE_CHAT))


async def test_updates_that_are_not_questions_are_acknowledged_and_ignored(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop):
        for update in (
            message_update(kind="edited_message", text="When are you open?"),
            message_update(kind="channel_post", text="News!"),
            message_update(new_chat_title="Renamed"),
        ):
            assert (await api.deliver(update)).status_code == 200
        await api.deliver(text_update("When are you open?"))
        await api.until(lambda: api.chat(PRIVATE_CHAT))
    assert [m.text for m in api.messages] == [OPEN]


async def test_an_update_delivered_twice_is_answered_once(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    update = text_update("When are you open?")
    async with serving(api, shop):
        assert (await api.deliver(update)).status_code == 200
        await api.until(lambda: api.chat(PRIVATE_CHAT))
        assert (await api.deliver(update)).status_code == 200
        await api.deliver(text_update("How long does shipping take?"))
        await api.until(lambda: len(api.chat(PRIVATE_CHAT)) == 2)
    assert [m.text for m in api.chat(PRIVATE_CHAT)] == [
        OPEN,
        "Parcels arrive in 2 to 4 working days.",
    ]
