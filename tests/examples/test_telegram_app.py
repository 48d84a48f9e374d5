"""examples/telegram_app.py: a python-telegram-bot application with its own /order command,
its buttons and a /feedback conversation, and botkit's handler after them, on the fake
Bot API. Each part answers what is its own; the other never sees it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest

from botkit import BotApp, Settings
from tests.adapters.telegram_api import (
    BOT_USERNAME,
    GROUP_CHAT,
    PRIVATE_CHAT,
    FakeBotAPI,
    ScriptedResponder,
    callback_update,
    group_update,
    text_update,
)
from tests.examples import load_example

example = load_example("telegram_app")
OPEN = "We are open Monday to Friday, 9:00 to 17:00."


@pytest.fixture(autouse=True)
def timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@asynccontextmanager
async def running(api: FakeBotAPI) -> AsyncIterator[BotApp]:
    """The example's application polling the fake, as its main() runs it."""
    async with BotApp(settings=Settings(store={"url": "memory://"}), bots=[example.SHOP]) as bots:
        application = example.build_application(
            api.token, bots.pipelines["shop"], base_url=api.base_url
        )
        async with application:
            await application.start()
            assert application.updater is not None
            await application.updater.start_polling(timeout=timedelta(seconds=1))
            try:
                yield bots
            finally:
                await application.updater.stop()
                await application.stop()


def texts(api: FakeBotAPI, chat: int = PRIVATE_CHAT) -> list[str]:
    return [message.text for message in api.chat(chat)]


async def say(api: FakeBotAPI, text: str, **options: Any) -> None:
    count = len(api.messages)
    api.push(text_update(text, **options))
    await api.until(lambda: len(api.messages) > count)


async def test_your_command_and_buttons_and_botkit_s_answers_share_one_application() -> None:
    async with FakeBotAPI() as api, running(api) as bots:
        await say(api, "/order")
        (question,) = api.chat(PRIVATE_CHAT)
        assert question.text == "Which size?"
        api.push(callback_update(question, "Large"))
        await api.until(lambda: question.text == "Ordered: one large box.")
        assert api.called("answerCallbackQuery")
        await say(api, "When are you open?")
        turns = await bots.store.recent(f"shop/telegram/{PRIVATE_CHAT}", 10)
    assert texts(api) == ["Ordered: one large box.", OPEN]
    # botkit never saw /order or the click: only its own question is in its memory.
    assert [turn.content for turn in turns] == ["When are you open?", OPEN]


async def test_a_conversation_of_yours_keeps_its_messages_from_botkit() -> None:
    async with FakeBotAPI() as api, running(api) as bots:
        await say(api, "/feedback")
        await say(api, "Faster shipping, please")  # the conversation's, not botkit's
        await say(api, "Can I get a refund?")  # the conversation is over: botkit's
        turns = await bots.store.recent(f"shop/telegram/{PRIVATE_CHAT}", 10)
    assert texts(api) == [
        "What should we improve?",
        "Thank you, we read every word.",
        "Refunds are possible within 30 days of purchase.",
    ]
    assert [turn.content for turn in turns][0] == "Can I get a refund?"


async def test_a_slow_answer_holds_up_none_of_your_handlers() -> None:
    gate = asyncio.Event()
    async with FakeBotAPI() as api, running(api) as bots:
        bots.pipelines["shop"].responder = ScriptedResponder("Here you are.", gate=gate)
        api.push(text_update("Something the FAQ does not know"))
        await say(api, "/order")  # answered while botkit's answer waits for the model
        assert texts(api) == ["Which size?"]
        gate.set()
        await api.until(lambda: len(api.messages) == 2)
    assert texts(api) == ["Which size?", "Here you are."]


async def test_in_a_group_botkit_answers_only_what_addresses_it() -> None:
    async with FakeBotAPI() as api, running(api):
        api.push(group_update("When are you open?"))  # chatter: nobody's
        await say(api, f"@{BOT_USERNAME} when are you open?", chat_id=GROUP_CHAT)
        await asyncio.sleep(0.2)
    assert texts(api, GROUP_CHAT) == [OPEN]
