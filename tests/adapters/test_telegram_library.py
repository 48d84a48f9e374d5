"""botkit's handler on an application of the user's own, beyond answering: a conversation
handed over to a person (the customer's messages go to the desk, the person's reach the
chat through the inbox worker that the user runs beside it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from telegram.ext import Application

import botkit.telegram
from botkit import BotApp, BotDefinition, Settings, StoreSettings
from botkit.inbox import InboxWorker
from botkit.testing import FakeDesk
from tests.adapters.telegram_api import FAST, PRIVATE_CHAT, FakeBotAPI, text_update

SHOP = BotDefinition.from_values(
    "shop",
    system="You help customers of a shop.",
    settings={"handoff": {"desk": "webhook", "webhook_url": "http://desk.invalid/events"}},
)


@pytest.fixture(autouse=True)
def timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@asynccontextmanager
async def running(
    api: FakeBotAPI, desk: FakeDesk | None = None, bot: BotDefinition = SHOP
) -> AsyncIterator[BotApp]:
    """A user's application (no rate limiter) with botkit's handler, and the inbox worker
    beside it."""
    settings = Settings(store=StoreSettings(url="memory://"))
    desks = {"shop": desk} if desk is not None else {}
    async with BotApp(settings=settings, bots=[bot], desks=desks) as bots:
        handler = botkit.telegram.handler(bots.pipelines["shop"], timing=FAST)
        application = Application.builder().token(api.token).base_url(f"{api.base_url}/bot").build()
        application.add_handler(handler)
        worker = InboxWorker(
            bots.store, {"telegram": (handler, ["shop"])}, handoffs=bots.handoffs, poll=0.05
        )
        async with application:
            handler.bot = application.bot  # for deliveries before the first update
            await application.start()
            assert application.updater is not None
            await application.updater.start_polling(timeout=timedelta(seconds=1))
            task = asyncio.create_task(worker.run())
            try:
                yield bots
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await worker.aclose()
                await application.updater.stop()
                await application.stop()


def texts(api: FakeBotAPI) -> list[str]:
    return [message.text for message in api.chat(PRIVATE_CHAT)]


async def test_a_person_takes_over_and_their_messages_reach_the_chat() -> None:
    desk = FakeDesk()
    async with FakeBotAPI() as api, running(api, desk) as bots:
        api.push(text_update("/human"))
        await api.until(lambda: desk.shown and texts(api))
        ((handoff, _),) = desk.shown
        api.push(text_update("Are you there?"))
        await api.until(lambda: desk.relayed)
        await bots.handoffs.say(handoff.id, agent_id="U1", agent_name="Anna", text="Hi, I'm Anna.")
        await api.until(lambda: len(texts(api)) == 3)
    notice, joined, said = texts(api)
    assert "handing you over to a person" in notice
    assert joined == "Anna from our team has joined the conversation."
    assert said == "Anna: Hi, I'm Anna."
    assert api.chat(PRIVATE_CHAT)[2].sent.startswith("<b>Anna:</b> Hi")  # their name, in bold
    assert desk.relayed == [(handoff.id, "Are you there?")]  # never answered by the bot


QUIET = BotDefinition.from_values(
    "shop",
    system="You help customers of a shop.",
    faq={"hours": {"question": "When are you open?", "answer": "Monday to Friday."}},
    settings={"streaming": False},
)


async def test_without_a_rate_limiter_the_answer_waits_out_flood_control() -> None:
    async with FakeBotAPI() as api, running(api, bot=QUIET):
        api.fail("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
        api.push(text_update("When are you open?"))
        await api.until(lambda: texts(api))
    refused, sent = api.called("sendMessage")
    assert (refused.status, sent.status) == (429, 200)
    assert sent.at - refused.at >= 1.0  # waited as told, then delivered
    assert texts(api) == ["Monday to Friday."]
