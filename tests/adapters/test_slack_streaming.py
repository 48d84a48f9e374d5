"""Slack's streaming messages (chat.startStream, appendStream, stopStream) for answers in a
thread, where slack-sdk has them; the placeholder and its edits where it does not, in a
DM's main view, and whenever Slack refuses."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from botkit.adapters.slack.reply import PLACEHOLDER
from botkit.home import BotDefinition
from tests.adapters.slack_api import (
    CHANNEL,
    DM,
    TEAM,
    USER,
    FakeSlackAPI,
    ScriptedResponder,
    deliver,
    event_body,
    mention,
    message,
    serving,
)

STREAMS = hasattr(AsyncWebClient, "chat_startStream")
"""slack-sdk 3.37 and later have streaming messages; older ones answer by edits."""
ANSWER = " ".join(f"word{i}" for i in range(80))


@pytest.fixture
async def api() -> Any:
    async with FakeSlackAPI(streaming=True) as server:
        yield server


def in_thread(api: FakeSlackAPI, channel: str, thread_ts: str | None) -> list[Any]:
    return [m for m in api.in_channel(channel) if m.thread_ts == thread_ts]


async def test_a_mention_is_answered_by_a_streaming_message_in_its_thread(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    responder = ScriptedResponder(ANSWER, chunk=8, pause=0.005)
    async with serving(api, shop, responder=responder) as bot:
        event = mention("Tell me everything")
        await deliver(bot.url, event_body(event))
        await api.until(lambda: [m.text for m in in_thread(api, CHANNEL, event["ts"])] == [ANSWER])
        await api.until(lambda: not in_thread(api, CHANNEL, event["ts"])[0].streaming)
        await api.settled()
    (answer,) = in_thread(api, CHANNEL, event["ts"])
    if not STREAMS:  # this slack-sdk has no streaming messages: the placeholder, edited
        assert not answer.streamed and api.called("chat.update")
        assert not api.called("chat.startStream")
        return
    assert answer.streamed and not answer.streaming
    (start,) = api.called("chat.startStream")
    assert start.params["thread_ts"] == event["ts"]
    assert (start.params["recipient_user_id"], start.params["recipient_team_id"]) == (USER, TEAM)
    appends = api.called("chat.appendStream")
    assert 2 <= len(appends) < len(ANSWER) / 8 / 3  # as it grew, throttled
    assert len(api.called("chat.stopStream")) == 1
    assert not api.called("chat.postMessage") and not api.called("chat.update")


async def test_a_dm_is_streamed_in_its_thread_and_edited_in_its_main_view(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    responder = ScriptedResponder(ANSWER, chunk=8, pause=0.005)
    async with serving(api, shop, responder=responder) as bot:
        top = message("Tell me everything", channel=DM)
        await deliver(bot.url, event_body(top))
        await api.until(lambda: [m.text for m in in_thread(api, DM, None)] == [ANSWER])
        threaded = message("And again", channel=DM, thread_ts=top["ts"])
        await deliver(bot.url, event_body(threaded))
        await api.until(lambda: [m.text for m in in_thread(api, DM, top["ts"])] == [ANSWER])
        await api.settled()
    (main,) = in_thread(api, DM, None)
    (reply,) = in_thread(api, DM, top["ts"])
    assert not main.streamed and main.edits  # Slack streams only replies in a thread
    assert reply.streamed is STREAMS
    if STREAMS:
        (start,) = api.called("chat.startStream")
        assert "recipient_user_id" not in start.params  # a DM's reader is known


async def test_a_mention_in_the_answer_notifies_nobody(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    text = "Ask <!channel> or <@U123> in <#C999>, or write 1 < 2."
    async with serving(api, shop, responder=ScriptedResponder(text, chunk=3)) as bot:
        event = mention("Who can help?")
        await deliver(bot.url, event_body(event))
        await api.until(lambda: api.called("chat.stopStream") or api.called("chat.update"))
        await api.settled()
    (answer,) = in_thread(api, CHANNEL, event["ts"])
    assert "<!channel>" not in answer.text and "<@U123>" not in answer.text
    if STREAMS:
        assert answer.text == "Ask &lt;!channel> or &lt;@U123> in &lt;#C999>, or write 1 < 2."


async def test_an_answer_longer_than_a_streaming_message_continues_in_the_thread(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    paragraphs = [f"Paragraph {n}: " + "lorem ipsum dolor sit amet " * 20 for n in range(30)]
    text = "\n\n".join(paragraphs)
    assert len(text) > 15_000
    async with serving(api, shop, responder=ScriptedResponder(text, chunk=900, pause=0.01)) as bot:
        event = mention("Tell me everything")
        await deliver(bot.url, event_body(event))
        await api.until(lambda: "Paragraph 29" in "".join(m.text for m in api.messages))
        await api.settled()
    shown = [m.text for m in in_thread(api, CHANNEL, event["ts"])]
    assert len(shown) >= 2
    assert " ".join(shown).split() == text.split()
    assert [c for c in api.calls if c.error] == []  # never over Slack's limits
    if STREAMS:
        assert 11_000 < len(shown[0]) <= 12_000
        assert shown[0].rstrip().endswith("amet") and shown[1].startswith("Paragraph")  # cut there


async def test_streaming_refused_for_the_app_falls_back_and_is_not_tried_again(
    api: FakeSlackAPI, shop: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    api.fail("chat.startStream", "missing_scope")
    responder = ScriptedResponder(lambda q: f"{ANSWER} ({q})", chunk=8, pause=0.005)
    async with serving(api, shop, responder=responder) as bot:
        first, second = mention("first"), mention("second")
        for event in (first, second):
            await deliver(bot.url, event_body(event))
            await api.until(
                lambda e=event: (
                    [m.text for m in in_thread(api, CHANNEL, e["ts"])]
                    == [f"{ANSWER} ({e['text'].split()[-1]})"]
                )
            )
    assert not any(m.streamed for m in api.messages)
    assert all(m.edits for m in api.messages)  # the placeholder, edited
    assert len(api.called("chat.startStream")) == (1 if STREAMS else 0)
    if STREAMS:
        assert "Slack refused a streaming message (missing_scope)" in caplog.text


async def test_a_refusal_for_one_channel_falls_back_for_that_answer_only(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    api.fail("chat.startStream", "channel_type_not_supported")
    async with serving(api, shop, responder=ScriptedResponder(ANSWER)) as bot:
        first, second = mention("first"), mention("second")
        await deliver(bot.url, event_body(first))
        await api.until(lambda: [m.text for m in in_thread(api, CHANNEL, first["ts"])] == [ANSWER])
        await deliver(bot.url, event_body(second))
        await api.until(lambda: [m.text for m in in_thread(api, CHANNEL, second["ts"])] == [ANSWER])
    (one,), (two,) = in_thread(api, CHANNEL, first["ts"]), in_thread(api, CHANNEL, second["ts"])
    assert not one.streamed and one.edits
    assert two.streamed is STREAMS


async def test_the_placeholder_is_never_left_as_an_answer(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop, responder=ScriptedResponder("")) as bot:
        event = mention("Say nothing")
        await deliver(bot.url, event_body(event))
        await api.until(lambda: api.called("chat.stopStream") or api.called("chat.update"))
        await api.settled()
    (answer,) = in_thread(api, CHANNEL, event["ts"])
    assert answer.text not in ("", PLACEHOLDER)
    assert "support team" in answer.text  # the fallback text
