"""Fuzzing the Telegram edge: updates Telegram sends, spoilt by hypothesis (a field
deleted, or replaced by any JSON value at any depth), posted to the webhook with its
secret, or handed out by the fake Bot API's getUpdates to a polling bot.

Every webhook example gets a 200 (a JSON object is confirmed, whatever it holds),
every polled one is confirmed (the next getUpdates' offset passes it), and the log
gets no traceback. The examples are a fixed number, drawn the same way on every run.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botkit.home import BotDefinition
from tests.adapters.edge_testing import json_values, spoiled, tracebacks
from tests.adapters.telegram_api import (
    GROUP_CHAT,
    FakeBotAPI,
    Shown,
    bot_message,
    group_update,
    message_update,
    photo_update,
    running,
    sticker_update,
    text_update,
)
from tests.adapters.test_telegram_webhook import SECRET_HEADER, serving

FUZZ = settings(
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    # One bot served for all the examples of a test, on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
READ = [
    "message_id", "date", "chat", "from", "id", "type", "is_bot", "first_name", "last_name",
    "username", "language_code", "text", "caption", "entities", "caption_entities", "offset",
    "length", "user", "reply_to_message", "message_thread_id", "is_topic_message", "photo",
    "sticker", "sender_chat",
]  # fmt: skip
"""Fields botkit or python-telegram-bot read: worth adding where they are missing."""
_BOTS_MESSAGE = bot_message(Shown(GROUP_CHAT, 5, "Hi", "Hi", None, None))
MESSAGES = [
    update["message"]
    for update in (
        text_update("When are you open?"),
        text_update("/reset"),
        group_update("@shop_bot when are you open?"),
        group_update("And on Sunday?", reply_to=_BOTS_MESSAGE),
        photo_update(caption="a photo"),
        sticker_update(),
        message_update(new_chat_title="Renamed"),
    )
]
_numbers = itertools.count(10_000)


@pytest.fixture(autouse=True)
def timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@dataclass
class Edge:
    api: FakeBotAPI
    caplog: pytest.LogCaptureFixture
    client: httpx.AsyncClient

    @property
    def records(self) -> list[logging.LogRecord]:
        return self.caplog.records


@pytest.fixture
async def webhook(shop: BotDefinition, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Edge]:
    with caplog.at_level(logging.INFO):
        async with FakeBotAPI() as api, serving(api, shop), httpx.AsyncClient() as client:
            yield Edge(api, caplog, client)
            await settled(api)  # what the examples started has finished: its log is read
        assert tracebacks(caplog.get_records("call") + caplog.records) == []


@pytest.fixture
async def polling(shop: BotDefinition, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Edge]:
    with caplog.at_level(logging.INFO):
        async with FakeBotAPI() as api, running(api, shop), httpx.AsyncClient() as client:
            yield Edge(api, caplog, client)
            await settled(api)  # what the examples started has finished: its log is read
        assert tracebacks(caplog.get_records("call") + caplog.records) == []


async def settled(api: FakeBotAPI, quiet: float = 0.3) -> None:
    """Until no call but polling has come for `quiet` seconds."""
    count = -1
    while True:
        calls = sum(call.method != "getUpdates" for call in api.calls)
        if calls == count:
            return
        count = calls
        await asyncio.sleep(quiet)


@st.composite
def updates(draw: st.DrawFn, *, exotic: bool) -> dict[str, Any]:
    """A message update, spoilt; it keeps a number of its own and a `message` field (which
    may hold anything), as Telegram's would for a bot that asks for messages only."""
    number = next(_numbers)
    message = copy.deepcopy(draw(st.sampled_from(MESSAGES)))
    # A chat of its own: python-telegram-bot's rate limiter lets a group have 20 a minute.
    message["chat"]["id"] = number if message["chat"]["id"] > 0 else -number
    values = json_values(exotic=exotic)
    spoilt = draw(values) if draw(st.integers(0, 9)) == 0 else draw(spoiled(message, READ, values))
    return {"update_id": number, "message": spoilt}


@FUZZ
@given(update=updates(exotic=True))
async def test_spoilt_updates_by_webhook_get_a_200_and_no_traceback(
    webhook: Edge, update: dict[str, Any]
) -> None:
    assert webhook.api.webhook is not None
    url, secret = webhook.api.webhook
    headers = {SECRET_HEADER: str(secret), "content-type": "application/json"}
    seen = len(webhook.records)
    response = await webhook.client.post(url, content=json.dumps(update), headers=headers)
    assert response.status_code == 200, response.text
    assert tracebacks(webhook.records[seen:]) == []


@settings(FUZZ, max_examples=60)
@given(update=updates(exotic=False))  # the fake Bot API sends strict JSON, as UTF-8
async def test_spoilt_updates_by_polling_are_confirmed_without_a_traceback(
    polling: Edge, update: dict[str, Any]
) -> None:
    seen = len(polling.records)
    polling.api.push(update)
    confirmed = update["update_id"] + 1
    await polling.api.until(
        lambda: any(c.params.get("offset") == confirmed for c in polling.api.called("getUpdates"))
    )
    assert tracebacks(polling.records[seen:]) == []
