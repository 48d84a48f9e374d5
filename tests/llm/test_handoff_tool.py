"""The model may hand a conversation to a person by calling the `handoff` tool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from botkit.app import BotApp
from botkit.home import BotHome
from botkit.settings import Settings
from botkit.testing import FakeChannel, FakeDesk, write_bot
from tests.conftest import SHOP_FAQ
from tests.llm.openai_server import Answer, Fail, OpenAIServer, Streamed, ToolCall

HANDOFF = '[handoff]\ndesk = "webhook"\nwebhook_url = "https://desk.example.com/hook"\n'
WANTS_A_PERSON = ToolCall("handoff", '{"reason": "asks about a refund the FAQ does not cover"}')


@asynccontextmanager
async def running(
    home: Path, server: OpenAIServer, *, streaming: bool, handoff: bool = True
) -> AsyncIterator[tuple[BotApp, FakeChannel, FakeDesk]]:
    settings = f"streaming = {str(streaming).lower()}\n" + (HANDOFF if handoff else "")
    write_bot(home, "shop", faq=SHOP_FAQ, settings=settings)
    bot = BotHome(home).load_checked("shop")
    desk = FakeDesk()
    values = {"base_url": server.base_url, "api_key": "sk-test", "retry_backoff": 0.01}
    app_settings = Settings(store={"url": "memory://"}, llm=values)
    async with BotApp(settings=app_settings, bots=[bot], desks={"shop": desk}) as app:
        pipeline = app.pipelines["shop"]

        async def streamed(message):  # type: ignore[no-untyped-def]
            stream = pipeline.stream(message)
            async for _ in stream:
                pass
            return stream.reply

        handler = streamed if streaming else pipeline.handle
        yield app, FakeChannel(handler, bot="shop"), desk


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_bot_that_can_hand_off_offers_the_tool(
    tmp_path: Path, openai_server: OpenAIServer, streaming: bool
) -> None:
    async with running(tmp_path, openai_server, streaming=streaming) as (_, chat, _desk):
        await chat.say("When are you open?")
    [tool] = openai_server.received[0].body["tools"]
    assert tool["type"] == "function" and tool["function"]["name"] == "handoff"
    assert tool["function"]["parameters"]["required"] == ["reason"]
    # The fixture asserts every request validated against the OpenAI schema.


async def test_a_bot_without_a_handoff_table_offers_no_tools(
    tmp_path: Path, openai_server: OpenAIServer
) -> None:
    async with running(tmp_path, openai_server, streaming=False, handoff=False) as (_, chat, _d):
        await chat.say("When are you open?")
    assert "tools" not in openai_server.received[0].body


async def test_calling_the_tool_hands_off_with_its_reason(
    tmp_path: Path, openai_server: OpenAIServer
) -> None:
    openai_server.then(Answer(text=None, tool_call=WANTS_A_PERSON))
    async with running(tmp_path, openai_server, streaming=False) as (app, chat, desk):
        reply = await chat.say("My refund never arrived and I am angry")
        assert reply is not None and reply.kind == "handoff"
        [(handoff, _)] = desk.shown
        assert handoff.trigger == "tool"
        assert handoff.reason == "asks about a refund the FAQ does not cover"
        assert (await app.store.handoff_current(handoff.conversation)) is not None


async def test_a_streamed_tool_call_after_some_text_keeps_the_text(
    tmp_path: Path, openai_server: OpenAIServer
) -> None:
    openai_server.then(Streamed(["Let me get ", "someone."], tool_call=WANTS_A_PERSON))
    async with running(tmp_path, openai_server, streaming=True) as (_, chat, desk):
        reply = await chat.say("My refund never arrived")
        assert reply is not None and reply.kind == "handoff"
        assert reply.text.startswith("Let me get someone.\n\n")
        assert "person" in reply.text
        assert desk.shown[0][0].reason == "asks about a refund the FAQ does not cover"


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_server_that_refuses_tools_is_asked_without_them(
    tmp_path: Path, openai_server: OpenAIServer, streaming: bool
) -> None:
    refusal = {"message": "model llama3 does not support tools", "type": "invalid_request_error"}
    answer = Streamed(["Nine to five."]) if streaming else Answer()
    openai_server.then(Fail(400, refusal), answer, answer)
    async with running(tmp_path, openai_server, streaming=streaming) as (_, chat, desk):
        first = await chat.say("When are you open?")
        second = await chat.say("And on Sundays?")
    assert first is not None and first.kind == "answer"
    assert second is not None and second.kind == "answer"
    bodies = [r.body for r in openai_server.received]
    assert ["tools" in b for b in bodies] == [True, False, False]
    assert desk.shown == []
