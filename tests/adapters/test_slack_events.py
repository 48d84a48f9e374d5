"""The Slack channel end to end over real HTTP: signed Events API requests to the served
`/slack/events`, answers on a local Slack Web API server."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from botkit.adapters.slack import THREADS_ARE_CONVERSATIONS
from botkit.adapters.slack.format import UPDATE_LIMIT, to_mrkdwn
from botkit.adapters.slack.reply import PLACEHOLDER
from botkit.home import BotDefinition, BotHome
from botkit.messages import IncomingMessage, conversation_key
from botkit.testing import write_bot
from tests.adapters.slack_api import (
    BOT_ID,
    BOT_USER,
    CHANNEL,
    DM,
    OTHER_CHANNEL,
    TIMING,
    USER,
    FakeSlackAPI,
    ScriptedResponder,
    deliver,
    event_body,
    mention,
    message,
    new_ts,
    serving,
    signed_headers,
    slash_command,
)

OPEN = "We are open Monday to Friday, 9:00 to 17:00."
STREAMS = hasattr(AsyncWebClient, "chat_startStream")
"""slack-sdk 3.37 and later have streaming messages; older ones answer by edits."""


@pytest.fixture
async def api() -> Any:
    async with FakeSlackAPI() as server:
        yield server


def answers(api: FakeSlackAPI, channel: str, thread_ts: str | None) -> list[str]:
    return [m.text for m in api.in_channel(channel) if m.thread_ts == thread_ts]


# --- answering ------------------------------------------------------------------------


async def test_a_mention_is_answered_once_in_its_thread(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        event = mention("When are you open?")
        response = await deliver(bot.url, event_body(event))
        assert response.status_code == 200
        await api.until(lambda: answers(api, CHANNEL, event["ts"]) == [OPEN])
        await api.settled()
    assert answers(api, CHANNEL, event["ts"]) == [OPEN]
    assert len(api.called("chat.postMessage")) == 1
    assert api.called("chat.postMessage")[0].params["thread_ts"] == event["ts"]


async def test_the_mention_and_message_events_of_one_mention_get_one_reply(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        event = mention("When are you open?")
        twin = message(event["text"], ts=event["ts"])  # Slack's `message` for the same message
        responses = await asyncio.gather(
            deliver(bot.url, event_body(event)), deliver(bot.url, event_body(twin))
        )
        assert [r.status_code for r in responses] == [200, 200]
        await api.until(lambda: answers(api, CHANNEL, event["ts"]) == [OPEN])
        await api.settled()
    assert len(api.called("chat.postMessage")) == 1


async def test_a_redelivered_event_is_answered_once(api: FakeSlackAPI, shop: BotDefinition) -> None:
    async with serving(api, shop) as bot:
        body = event_body(mention("When are you open?"))
        first = await deliver(bot.url, body)
        retries = [await deliver(bot.url, body, retry=number) for number in (1, 2, 3)]
        assert [r.status_code for r in [first, *retries]] == [200] * 4
        await api.until(lambda: api.called("chat.update"))
        await api.settled()
    assert len(api.called("chat.postMessage")) == 1
    assert [m.text for m in api.messages] == [OPEN]


async def test_an_event_is_acknowledged_before_its_answer_exists(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    gate = asyncio.Event()
    async with serving(api, shop, responder=ScriptedResponder("Done.", gate=gate)) as bot:
        response = await deliver(bot.url, event_body(message("Slow question", channel=DM)))
        assert response.status_code == 200
        await api.until(lambda: answers(api, DM, None) == [PLACEHOLDER])  # shown at once
        assert api.called("chat.update") == []
        gate.set()
        await api.until(lambda: answers(api, DM, None) == ["Done."])


async def test_a_dm_is_answered_in_the_dm(api: FakeSlackAPI, shop: BotDefinition) -> None:
    async with serving(api, shop) as bot:
        await deliver(bot.url, event_body(message("When are you open?", channel=DM)))
        await api.until(lambda: answers(api, DM, None) == [OPEN])


async def test_a_follow_up_in_the_bots_thread_is_answered_without_a_mention(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        first = mention("When are you open?")
        await deliver(bot.url, event_body(first))
        await api.until(lambda: answers(api, CHANNEL, first["ts"]) == [OPEN])
        follow_up = message("Can I get a refund?", thread_ts=first["ts"])
        await deliver(bot.url, event_body(follow_up))
        refund = "Refunds are possible within 30 days of purchase."
        await api.until(lambda: answers(api, CHANNEL, first["ts"]) == [OPEN, refund])
        history = await bot.app.store.recent(
            conversation_key("shop", "slack", f"{CHANNEL}:{first['ts']}"), 10
        )
    assert [turn.content for turn in history] == [
        "When are you open?",
        OPEN,
        "Can I get a refund?",
        refund,
    ]


async def test_channel_chatter_and_other_threads_are_left_alone(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        await deliver(bot.url, event_body(message("When are you open?")))
        other_thread = new_ts()
        await deliver(bot.url, event_body(message("When are you open?", thread_ts=other_thread)))
        await api.settled()
    assert api.called("chat.postMessage") == []


async def test_the_bots_own_messages_and_edits_are_ignored(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        api.echo_to = bot.url  # Slack tells the bot about its own posts and edits
        event = mention("When are you open?")
        await deliver(bot.url, event_body(event))
        await api.until(lambda: answers(api, CHANNEL, event["ts"]) == [OPEN])
        own = message(
            f"<@{BOT_USER}> When are you open?", user=BOT_USER, bot_id=BOT_ID, thread_ts=event["ts"]
        )
        await deliver(bot.url, event_body(own))
        await api.settled()
    assert len(api.called("chat.postMessage")) == 1


async def test_edits_deletions_joins_and_bots_are_ignored(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    kinds: list[dict[str, Any]] = [
        {"subtype": "message_changed", "hidden": True},
        {"subtype": "message_deleted", "hidden": True},
        {"subtype": "channel_join"},
        {"subtype": "bot_message", "bot_id": "B0THER"},
        {"bot_id": "B0THER", "bot_profile": {"name": "other"}},
        {"hidden": True},
    ]
    async with serving(api, shop) as bot:
        for extra in kinds:
            body = event_body(message("When are you open?", channel=DM, **extra))
            assert (await deliver(bot.url, body)).status_code == 200
        await api.settled()
    assert api.called("chat.postMessage") == []


async def test_a_streamed_answer_edits_the_placeholder_throttled(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    text = " ".join(f"word{n}" for n in range(60))
    responder = ScriptedResponder(text, chunk=6, pause=0.01)
    async with serving(api, shop, responder=responder) as bot:
        event = mention("Tell me a story")
        await deliver(bot.url, event_body(event))
        await api.until(lambda: answers(api, CHANNEL, event["ts"]) == [text])
    updates = api.called("chat.update")
    texts = [call.params["text"] for call in updates]
    assert len(updates) >= 3  # it was edited as the text arrived…
    assert len(updates) < len(text) // 6  # …but not once per delta
    assert all(text.startswith(partial) for partial in texts)
    gaps = [b.at - a.at for a, b in zip(updates, updates[1:], strict=False)]
    assert min(gaps[:-1]) >= 0.04  # the last update, with the rest, may follow at once


async def test_without_streaming_the_placeholder_is_replaced_once(
    api: FakeSlackAPI, home: Any
) -> None:
    write_bot(home, "quiet", faq={}, settings="streaming = false\n")
    bot_definition = BotHome(home).load_checked("quiet")
    responder = ScriptedResponder("**All** good", chunk=2, pause=0.01)
    async with serving(api, bot_definition, responder=responder) as bot:
        await deliver(bot.url, event_body(message("Hello", channel=DM)))
        await api.until(lambda: answers(api, DM, None) == ["*All* good"])
    assert len(api.called("chat.update")) == 1


async def test_an_8000_character_answer_arrives_complete(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    paragraphs = [f"Paragraph {n}: " + "lorem ipsum dolor sit amet " * 10 for n in range(30)]
    text = "\n\n".join(paragraphs)
    assert len(text) > 8000
    responder = ScriptedResponder(text, chunk=500, pause=0.01)
    async with serving(api, shop, responder=responder) as bot:
        event = mention("Tell me everything")
        await deliver(bot.url, event_body(event))
        await api.until(lambda: "Paragraph 29" in "".join(answers(api, CHANNEL, event["ts"])))
        await api.settled()
    shown = answers(api, CHANNEL, event["ts"])
    assert len(shown) >= 3
    assert all(len(piece) <= UPDATE_LIMIT for piece in shown)
    # No msg_too_long on the way. (This fake has no streaming messages: refused once, where
    # slack-sdk has them, the answer is the placeholder and its edits.)
    refused = [("chat.startStream", "unknown_method")] if STREAMS else []
    assert [(c.method, c.error) for c in api.calls if c.error] == refused
    assert "\n\n".join(shown).split() == text.split()


async def test_markdown_is_sent_as_mrkdwn(api: FakeSlackAPI, shop: BotDefinition) -> None:
    text = "**Hours**: see [our page](https://example.com/?a=1&b=2) & call <us>"
    async with serving(api, shop, responder=ScriptedResponder(text)) as bot:
        await deliver(bot.url, event_body(message("Hours?", channel=DM)))
        await api.until(lambda: answers(api, DM, None) == [to_mrkdwn(text)])
    assert to_mrkdwn(text) == (
        "*Hours*: see <https://example.com/?a=1&amp;b=2|our page> &amp; call &lt;us&gt;"
    )


async def test_a_bare_mention_gets_the_welcome(api: FakeSlackAPI, shop: BotDefinition) -> None:
    async with serving(api, shop) as bot:
        event = mention("")
        await deliver(bot.url, event_body(event))
        await api.until(lambda: api.called("chat.postMessage"))
        incoming = IncomingMessage(
            channel="slack", bot="shop", conversation_id=CHANNEL, user_id=USER, text=""
        )
        welcome = bot.app.pipelines["shop"].composer.render("welcome", incoming)
    assert answers(api, CHANNEL, event["ts"]) == [to_mrkdwn(welcome)]


async def test_a_message_with_only_files_gets_the_unsupported_template(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        event = message("", channel=DM, subtype="file_share", files=[{"id": "F1"}])
        await deliver(bot.url, event_body(event))
        await api.until(lambda: api.called("chat.postMessage"))
        incoming = IncomingMessage(
            channel="slack", bot="shop", conversation_id=DM, user_id=USER, text=""
        )
        unsupported = bot.app.pipelines["shop"].composer.render("unsupported", incoming)
    assert answers(api, DM, None) == [to_mrkdwn(unsupported)]


async def test_a_renamed_slash_command_is_the_one_answered(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop, slash_command="help-desk") as bot:
        renamed = await slash_command(bot.url, "help", command="/help-desk")
        old = await slash_command(bot.url, "help")
    assert renamed.status_code == 200 and renamed.json()["text"].strip()
    assert old.status_code == 404


# --- Slack Web API errors -------------------------------------------------------------


async def test_a_ratelimited_call_is_retried_after_the_wait_slack_asks_for(
    api: FakeSlackAPI, shop: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    api.fail("chat.update", "ratelimited", status=429, retry_after=1)
    with caplog.at_level(logging.WARNING, logger="botkit.adapters.slack.reply"):
        async with serving(api, shop) as bot:
            await deliver(bot.url, event_body(message("When are you open?", channel=DM)))
            await api.until(lambda: answers(api, DM, None) == [OPEN], within=15)
    assert "Slack rate-limited chat.update; retrying after 1 s" in caplog.text
    # (then a third: the feedback buttons under the whole answer)
    refused, accepted = api.called("chat.update")[:2]
    assert refused.error == "ratelimited" and accepted.error is None
    assert accepted.at - refused.at >= 1.0


@pytest.mark.parametrize("error", ["not_in_channel", "channel_not_found"])
async def test_a_channel_that_refuses_the_bot_does_not_hold_up_others(
    api: FakeSlackAPI, shop: BotDefinition, caplog: pytest.LogCaptureFixture, error: str
) -> None:
    api.fail("chat.postMessage", error, times=10, when=lambda p: p["channel"] == OTHER_CHANNEL)
    async with serving(api, shop) as bot:
        locked = mention("When are you open?", channel=OTHER_CHANNEL)
        fine = mention("When are you open?")
        with caplog.at_level(logging.WARNING, logger="botkit.adapters.slack"):
            await asyncio.gather(
                deliver(bot.url, event_body(locked)), deliver(bot.url, event_body(fine))
            )
            await api.until(lambda: answers(api, CHANNEL, fine["ts"]) == [OPEN])
            await api.until(lambda: error in caplog.text)
    assert api.in_channel(OTHER_CHANNEL) == []
    assert OTHER_CHANNEL in caplog.text


# --- security and malformed requests --------------------------------------------------


async def test_url_verification_is_answered_with_the_challenge(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        body = {"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
        response = await deliver(bot.url, {**body, "type": "url_verification"})
    assert response.status_code == 200
    assert response.json() == {"challenge": body["challenge"]}


async def test_a_bad_signature_or_a_stale_timestamp_is_refused(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        body = event_body(message("When are you open?", channel=DM))
        wrong = await deliver(bot.url, body, secret="not-the-secret")
        stale = await deliver(bot.url, body, timestamp=int(time.time()) - 6 * 60)
        future = await deliver(bot.url, body, timestamp=int(time.time()) + 6 * 60)
        async with httpx.AsyncClient() as client:
            unsigned = await client.post(bot.url, json=body)
            garbled = await client.post(
                bot.url,
                json=body,
                headers={"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
            )
        await api.settled()
    assert [r.status_code for r in (wrong, stale, future, unsigned, garbled)] == [401] * 5
    assert api.called("chat.postMessage") == []


async def test_a_malformed_body_gets_a_4xx(api: FakeSlackAPI, shop: BotDefinition) -> None:
    # Not a JSON object at all; one whose fields are wrong is acknowledged, with a warning
    # (test_slack_payloads.py), as Slack would only send it again.
    bodies = [
        b"{not json",
        b"[1, 2, 3]",
        b"[" * 100_000,
        b"\xff\xfe",
        b"",
    ]
    async with serving(api, shop) as bot:
        statuses = [(await deliver(bot.url, raw)).status_code for raw in bodies]
        await api.settled()
    assert all(400 <= status < 500 for status in statuses), statuses
    assert api.called("chat.postMessage") == []


async def test_odd_requests_get_no_5xx_and_no_reply(api: FakeSlackAPI, shop: BotDefinition) -> None:
    bodies: list[dict[str, Any]] = [
        {"type": "event_callback", "event": {"type": "message"}},
        {"type": "event_callback", "event": {"type": "app_mention", "user": 7, "ts": 1}},
        event_body({"type": "message", "user": USER, "channel": DM, "ts": "not-a-time"}),
        event_body({"type": "message", "user": USER, "channel": DM, "ts": "1.2", "text": [1]}),
        event_body({"type": "message", "user": {"id": USER}, "channel": ["D1"], "text": "hi"}),
        {"type": "app_rate_limited", "team_id": "T1", "minute_rate_limited": 1518467820},
        {"type": "something_new"},
    ]
    async with serving(api, shop) as bot:
        statuses = [(await deliver(bot.url, body)).status_code for body in bodies]
        await api.settled()
    assert all(status in (200, 400) for status in statuses), statuses
    assert statuses[-2:] == [200, 200]  # what Slack may send and the bot has no use for
    assert api.called("chat.update") == []


async def test_a_malformed_form_gets_a_4xx(api: FakeSlackAPI, shop: BotDefinition) -> None:
    async with serving(api, shop) as bot:
        raw = b"payload=%7Bnot+json"
        headers = signed_headers(raw, content_type="application/x-www-form-urlencoded")
        async with httpx.AsyncClient() as client:
            response = await client.post(bot.url, content=raw, headers=headers)
    assert response.status_code == 400


async def test_a_valid_event_the_bot_does_not_handle_is_acknowledged(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        event = {"type": "reaction_added", "user": USER, "reaction": "thumbsup"}
        response = await deliver(bot.url, event_body(event))
        await api.settled()
    assert response.status_code == 200
    assert api.called("chat.postMessage") == []


# --- the slash command ----------------------------------------------------------------


async def test_the_slash_command_answers_help_to_the_user_alone(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        response = await slash_command(bot.url, "help")
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    assert body["text"].strip()
    assert api.called("chat.postMessage") == []


async def test_the_slash_command_resets_the_dm_conversation(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        await deliver(bot.url, event_body(message("When are you open?", channel=DM)))
        await api.until(lambda: answers(api, DM, None) == [OPEN])
        key = conversation_key("shop", "slack", DM)
        assert await bot.app.store.recent(key, 10)
        response = await slash_command(bot.url, "reset")
        assert response.status_code == 200 and response.json()["text"].strip()
        assert await bot.app.store.recent(key, 10) == []


async def test_the_slash_command_in_a_channel_explains_that_threads_are_conversations(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        response = await slash_command(bot.url, "reset", channel=CHANNEL)
    assert response.json()["text"] == THREADS_ARE_CONVERSATIONS


async def test_a_text_reset_works_in_a_dm(api: FakeSlackAPI, shop: BotDefinition) -> None:
    async with serving(api, shop) as bot:
        await deliver(bot.url, event_body(message("When are you open?", channel=DM)))
        await api.until(lambda: answers(api, DM, None) == [OPEN])
        await deliver(bot.url, event_body(message("/reset", channel=DM)))
        await api.until(lambda: len(api.called("chat.update")) == 2)
        assert await bot.app.store.recent(conversation_key("shop", "slack", DM), 10) == []


# --- stopping -------------------------------------------------------------------------


async def test_a_reply_under_way_is_finished_on_sigterm(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    gate = asyncio.Event()
    responder = ScriptedResponder("Finished anyway.", gate=gate)
    async with serving(api, shop, responder=responder) as bot:
        await deliver(bot.url, event_body(message("Slow question", channel=DM)))
        await api.until(lambda: api.called("chat.postMessage"))
        asyncio.get_running_loop().call_later(0.2, gate.set)
    assert answers(api, DM, None) == ["Finished anyway."]


async def test_a_reply_that_outlasts_the_shutdown_wait_is_cancelled(
    api: FakeSlackAPI,
    shop: BotDefinition,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(TIMING, "shutdown_timeout", 0.2)
    responder = ScriptedResponder("Never sent.", gate=asyncio.Event())
    with caplog.at_level(logging.WARNING, logger="botkit.adapters.slack"):
        async with serving(api, shop, responder=responder) as bot:
            await deliver(bot.url, event_body(message("Slow question", channel=DM)))
            await api.until(lambda: api.called("chat.postMessage"))
    assert "1 replies still under way after 0.2 s; cancelling them" in caplog.text
    assert api.called("chat.update") == []
