"""Telegram updates whose fields have the wrong types (the audit's: objects where ids
belong; and huge numbers, strings where objects belong…), by webhook and by polling:
each is confirmed with one warning line naming the field, no traceback, nothing
answered, and the bot carries on."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import httpx
import pytest
from telegram import Update

from botkit.adapters.telegram.updates import read_update
from botkit.errors import PayloadError
from botkit.home import BotDefinition
from tests.adapters.edge_testing import tracebacks, unreadable
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
from tests.adapters.test_telegram_webhook import serving

OPEN = "We are open Monday to Friday, 9:00 to 17:00."


@pytest.fixture(autouse=True)
def timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def api() -> Any:
    async with FakeBotAPI() as server:
        yield server


def changed(*path: str | int, to: Any) -> dict[str, Any]:
    """A private text message's update, with the field at `path` set `to` a value."""
    update = text_update("When are you open?")
    node = update
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = to
    return update


# Each keeps an update_id and a message, as Telegram (and the fake's getUpdates) would.
BAD_MESSAGES: list[tuple[str, dict[str, Any], str]] = [
    ("chat id object", changed("message", "chat", "id", to={}), "message.chat.id: an object"),
    ("sender id object", changed("message", "from", "id", to={"id": 1}), "message.from.id: an"),
    ("message id text", changed("message", "message_id", to="7"), "message.message_id: a string"),
    ("chat id huge", changed("message", "chat", "id", to=10**30), "message.chat.id: input should"),
    ("date huge", changed("message", "date", to=10**30), "message.date: input should be less"),
    ("date object", changed("message", "date", to={}), "message.date: an object where an int"),
    ("text object", changed("message", "text", to={"t": 1}), "message.text: an object where a"),
    ("chat list", changed("message", "chat", to=[111]), "message.chat: an array where an obj"),
    ("sender list", changed("message", "from", to=[]), "message.from: an array where an obj"),
    ("name number", changed("message", "from", "first_name", to=1), "message.from.first_name"),
    ("language list", changed("message", "from", "language_code", to=["en"]), "language_code"),
    ("is_bot text", changed("message", "from", "is_bot", to="no"), "message.from.is_bot: a str"),
    ("entities object", changed("message", "entities", to={}), "message.entities: an object"),
    (
        "entity offset object",
        changed("message", "entities", to=[{"type": "mention", "offset": {}, "length": 3}]),
        "message.entities.0.offset: an object where an integer belongs",
    ),
    ("reply list", changed("message", "reply_to_message", to=[]), "message.reply_to_message"),
    ("thread id object", changed("message", "message_thread_id", to={}), "message_thread_id"),
    ("message text", changed("message", to="hello"), "message: a string where an object"),
    ("no chat or date", changed("message", to={"text": "hi"}), "message.message_id: missing"),
    ("lone surrogate", changed("message", "text", to="caf\ud800"), "surrogates not allowed"),
    ("photo number", changed("message", "photo", to=5), "python-telegram-bot cannot read it"),
]
BAD_IDS: list[tuple[str, dict[str, Any], str]] = [
    ("no update id", {"message": text_update("hi")["message"]}, "update_id: missing"),
    ("update id text", {**text_update("hi"), "update_id": "seven"}, "update_id: a string"),
]


@pytest.mark.parametrize(
    ("update", "problem"),
    [case[1:] for case in BAD_MESSAGES + BAD_IDS],
    ids=[case[0] for case in BAD_MESSAGES + BAD_IDS],
)
def test_a_badly_typed_field_is_named(update: dict[str, Any], problem: str) -> None:
    with pytest.raises(PayloadError) as caught:
        read_update(update, None)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    "update",
    [
        text_update("When are you open?"),
        group_update("@shop_bot hi"),
        group_update(
            "And on Sunday?", reply_to=bot_message(Shown(GROUP_CHAT, 5, OPEN, OPEN, None, 1))
        ),
        photo_update(),
        sticker_update(),
        message_update(kind="edited_message", text="When are you open?"),
        message_update(kind="channel_post", text="News!"),
        message_update(new_chat_title="Renamed"),
        {"update_id": 7, "my_chat_member": {"chat": {"id": 1, "type": "private"}, "date": 1}},
    ],
)
def test_what_telegram_sends_passes(update: dict[str, Any]) -> None:
    assert read_update(copy.deepcopy(update), None) == Update.de_json(update, None)


async def deliver(api: FakeBotAPI, update: dict[str, Any]) -> httpx.Response:
    """`api.deliver`, but as ASCII JSON: a lone surrogate goes as its escape."""
    assert api.webhook is not None
    url, secret = api.webhook
    headers = {"X-Telegram-Bot-Api-Secret-Token": str(secret), "content-type": "application/json"}
    async with httpx.AsyncClient() as client:
        return await client.post(url, content=json.dumps(update).encode(), headers=headers)


async def test_badly_typed_updates_by_webhook_are_confirmed_and_left_alone(
    api: FakeBotAPI, shop: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        async with serving(api, shop):
            for name, update, problem in BAD_MESSAGES + BAD_IDS:
                before = len(unreadable(caplog.records))
                response = await deliver(api, update)
                assert response.status_code == 200, (name, response.text)
                warnings = unreadable(caplog.records)[before:]
                assert len(warnings) == 1 and problem in warnings[0], (name, warnings)
            assert api.called("sendMessage") == []
            await api.deliver(text_update("When are you open?"))
            await api.until(lambda: [m.text for m in api.messages] == [OPEN])
    assert tracebacks(caplog.records) == []


async def test_badly_typed_updates_by_polling_are_confirmed_and_left_alone(
    api: FakeBotAPI, shop: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression: one update python-telegram-bot could not parse failed its whole batch
    # again at every poll, for ever; one it parsed with an object for an id failed later.
    good = text_update("When are you open?")
    # The fake Bot API sends its JSON as UTF-8, which a lone surrogate is not.
    cases = [case for case in BAD_MESSAGES if case[0] != "lone surrogate"]
    with caplog.at_level(logging.INFO):
        async with running(api, shop):
            for _, update, _ in cases:
                api.push(update)
            api.push(good)
            await api.until(lambda: [m.text for m in api.messages] == [OPEN])
            confirmed = good["update_id"] + 1
            await api.until(
                lambda: any(c.params.get("offset") == confirmed for c in api.called("getUpdates"))
            )
    warnings = unreadable(caplog.records)
    assert len(warnings) == len(cases)
    for (name, update, problem), warning in zip(cases, warnings, strict=True):
        assert f"update {update['update_id']} " in warning and problem in warning, name
    assert tracebacks(caplog.records) == []
    assert [m.chat_id for m in api.messages] == [good["message"]["chat"]["id"]]
