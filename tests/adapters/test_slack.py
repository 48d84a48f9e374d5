"""The Slack channel's edge: normalization, which messages are answered, de-duplication keys,
and the settings it needs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.signature import SignatureVerifier

from botkit.adapters import ServeOptions
from botkit.adapters.slack import SlackChannel, build, to_incoming
from botkit.adapters.slack.events import (
    BotIdentity,
    destination,
    is_addressed,
    is_ignored,
    message_key,
    parse_request,
    plain_text,
    signature_problem,
)
from botkit.adapters.slack.reply import Destination
from botkit.app import BotApp
from botkit.errors import ConfigError
from botkit.home import BotDefinition, BotHome
from botkit.settings import Settings
from botkit.stores.memory import MemoryStore
from botkit.testing import write_bot
from tests.adapters.slack_api import (
    BOT_ID,
    BOT_USER,
    CHANNEL,
    DM,
    SECRET,
    TOKEN,
    USER,
    mention,
    message,
    new_ts,
    signed_headers,
)

ME = BotIdentity(BOT_USER, BOT_ID)


def incoming(event: dict[str, Any]) -> Any:
    return to_incoming(event, bot="shop", me=ME)


# --- normalization --------------------------------------------------------------------


def test_a_dm_is_one_conversation_per_dm() -> None:
    event = message(
        "When are you open?",
        channel=DM,
        ts="1700000000.000100",
        user_profile={"display_name": "ann", "real_name": "Ann Lee"},
    )
    normalized = incoming(event)
    assert normalized.channel == "slack" and normalized.bot == "shop"
    assert normalized.conversation_id == DM and normalized.user_id == USER
    assert normalized.text == "When are you open?"
    assert normalized.user_name == "ann"
    assert normalized.message_id == "1700000000.000100"
    assert normalized.timestamp == datetime.fromtimestamp(1700000000.0001, UTC)
    in_a_thread = incoming(message("And on Sunday?", channel=DM, thread_ts=event["ts"]))
    assert in_a_thread.conversation_id == DM


def test_in_a_channel_each_thread_is_one_conversation() -> None:
    top = mention("When are you open?", ts="1700000000.000100")
    reply = message("And on Sunday?", thread_ts=top["ts"])
    other = mention("Refunds?")
    assert incoming(top).conversation_id == f"{CHANNEL}:{top['ts']}"
    assert incoming(reply).conversation_id == f"{CHANNEL}:{top['ts']}"
    assert incoming(other).conversation_id == f"{CHANNEL}:{other['ts']}"


def test_slack_markup_becomes_plain_text_without_the_bots_mention() -> None:
    text = (
        f"<@{BOT_USER}> ask <@U0BOB|bob> and <@U0CAROL> in <#C0SALES|sales>, see "
        "<https://example.com/a?b=1&amp;c=2|the page> or <https://example.com> "
        "or <mailto:help@example.com|help@example.com>; <!here> 1 &lt; 2 &amp;&amp; 3 &gt; 2 "
        "<!subteam^S0TEAM|@support>"
    )
    assert plain_text(text, ME) == (
        "ask @bob and @U0CAROL in #sales, see the page (https://example.com/a?b=1&c=2) or "
        "https://example.com or help@example.com; @here 1 < 2 && 3 > 2 @support"
    )
    assert plain_text(f"<@{BOT_USER}|shopbot> hi", ME) == "hi"


def test_a_message_with_only_files_has_empty_text() -> None:
    event = message("", channel=DM, subtype="file_share", files=[{"id": "F1"}])
    assert incoming(event).text == ""


# --- which messages are answered ------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"bot_id": "B0THER"},
        {"bot_profile": {"name": "other"}},
        {"user": BOT_USER},
        {"subtype": "message_changed"},
        {"subtype": "message_deleted"},
        {"subtype": "message_replied"},
        {"subtype": "channel_join"},
        {"subtype": "bot_message"},
        {"hidden": True},
        {"user": None},
    ],
)
def test_bots_edits_joins_and_hidden_messages_are_ignored(extra: dict[str, Any]) -> None:
    event = message("When are you open?", channel=DM, **extra)
    assert is_ignored(event, ME)
    assert incoming(event) is None


@pytest.mark.parametrize("subtype", ["file_share", "thread_broadcast"])
def test_messages_a_person_writes_are_not_ignored(subtype: str) -> None:
    assert incoming(message("Here it is", channel=DM, subtype=subtype)) is not None


def test_other_events_are_ignored() -> None:
    assert incoming({"type": "reaction_added", "user": USER, "channel": DM, "ts": "1.1"}) is None


def test_in_channels_only_mentions_and_thread_replies_are_candidates() -> None:
    assert incoming(message("When are you open?")) is None
    assert incoming(mention("When are you open?")) is not None
    assert incoming(message(f"Hey <@{BOT_USER}>, when are you open?")) is not None
    assert incoming(message("And Sunday?", thread_ts=new_ts())) is not None


def test_a_thread_reply_without_a_mention_is_not_addressed() -> None:
    # Answered only in a thread the bot is part of: the channel checks its records.
    assert not is_addressed(message("And Sunday?", thread_ts=new_ts()), ME)
    assert is_addressed(message(f"<@{BOT_USER}> And Sunday?", thread_ts=new_ts()), ME)
    assert is_addressed(message("Hi", channel=DM), ME)
    assert is_addressed(mention("Hi"), ME)


def test_answers_go_to_the_thread_in_channels_and_to_the_dm_in_dms() -> None:
    top = mention("When are you open?")
    assert destination(top) == Destination(CHANNEL, top["ts"])
    reply = message("And Sunday?", thread_ts=top["ts"])
    assert destination(reply) == Destination(CHANNEL, top["ts"])
    assert destination(message("Hi", channel=DM)) == Destination(DM, None)


# --- de-duplication -------------------------------------------------------------------


def test_the_mention_and_message_events_of_one_message_share_their_key() -> None:
    event = mention("When are you open?")
    twin = message(event["text"], ts=event["ts"])
    assert message_key("shop", event) == message_key("shop", twin)
    assert message_key("shop", event) != message_key("shop", mention("When are you open?"))
    assert message_key("shop", event) != message_key("nimbus", event)


async def test_a_key_is_claimed_once() -> None:
    async with MemoryStore() as store:
        key = message_key("shop", mention("When are you open?"))
        assert await store.claim(key, ttl=60)
        assert not await store.claim(key, ttl=60)


# --- requests -------------------------------------------------------------------------


def test_a_signature_holds_only_for_the_secret_the_body_and_a_recent_time() -> None:
    verifier = SignatureVerifier(SECRET)
    body = b'{"type": "event_callback"}'
    now = int(time.time())
    assert signature_problem(verifier, signed_headers(body, timestamp=now), body) is None
    problems = [
        signature_problem(verifier, signed_headers(body, secret="other"), body),
        signature_problem(verifier, signed_headers(body), body + b" "),
        signature_problem(verifier, signed_headers(body, timestamp=now - 301), body),
        signature_problem(verifier, {"x-slack-signature": "v0=00"}, body),
        signature_problem(
            verifier, {"x-slack-request-timestamp": "١٢٣", "x-slack-signature": "v0=0"}, body
        ),
    ]
    assert problems == [
        "wrong X-Slack-Signature",
        "wrong X-Slack-Signature",
        "stale or invalid X-Slack-Request-Timestamp",
        "missing X-Slack-Request-Timestamp or X-Slack-Signature",
        "stale or invalid X-Slack-Request-Timestamp",
    ]


def test_requests_slack_sends_are_parsed() -> None:
    assert parse_request(b'{"type": "url_verification", "challenge": "c"}', "application/json")
    form = b"command=%2Fbotkit&text=help&channel_id=D1"
    assert parse_request(form, "application/x-www-form-urlencoded")["text"] == "help"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{", "application/json"),
        (b'"text"', "application/json"),
        (b"text=help", "application/x-www-form-urlencoded"),
        (b"payload=%5B%5D", "application/x-www-form-urlencoded"),
        (b"\xff", "application/json"),
    ],
)
def test_anything_else_is_a_value_error(body: bytes, content_type: str) -> None:
    # A JSON object whose fields are wrong is payloads.check_request's (test_slack_payloads).
    with pytest.raises(ValueError):
        parse_request(body, content_type)


# --- settings -------------------------------------------------------------------------


def settings(**slack: Any) -> Settings:
    return Settings(store={"url": "memory://"}, slack=slack)


@pytest.mark.parametrize(
    ("slack", "variable"),
    [
        ({}, "SLACK_BOT_TOKEN"),
        ({"bot_token": TOKEN}, "SLACK_SIGNING_SECRET"),
        ({"bot_token": " ", "signing_secret": SECRET}, "SLACK_BOT_TOKEN"),
    ],
)
async def test_missing_credentials_name_the_variable(
    shop: BotDefinition, slack: dict[str, Any], variable: str
) -> None:
    async with BotApp(settings=settings(**slack), bots=[shop]) as app:
        with pytest.raises(ConfigError) as caught:
            build(app, ServeOptions(channels=("slack",)))
    assert caught.value.problems[0].path == variable


async def test_socket_mode_needs_no_signing_secret_and_serves_no_route(shop: BotDefinition) -> None:
    async with BotApp(settings=settings(bot_token=TOKEN, app_token="xapp-1"), bots=[shop]) as app:
        channel = build(app, ServeOptions(channels=("slack",)))
        try:
            assert channel.routes() == []
        finally:
            await channel.aclose()


async def test_the_events_api_serves_slack_events(shop: BotDefinition) -> None:
    async with BotApp(
        settings=settings(bot_token=TOKEN, signing_secret=SECRET), bots=[shop]
    ) as app:
        channel = build(app, ServeOptions(channels=("slack",)))
        try:
            assert [getattr(route, "path", None) for route in channel.routes()] == ["/slack/events"]
        finally:
            await channel.aclose()


async def test_with_several_bots_botkit_slack_bot_names_the_one_on_slack(
    home: Path, shop: BotDefinition
) -> None:
    write_bot(home, "nimbus", faq={})
    nimbus = BotHome(home).load_checked("nimbus")
    credentials = {"bot_token": TOKEN, "signing_secret": SECRET}
    async with BotApp(settings=settings(**credentials), bots=[shop, nimbus]) as app:
        with pytest.raises(ConfigError) as caught:
            SlackChannel(app)
        assert caught.value.problems[0].path == "BOTKIT_SLACK_BOT"
    chosen = settings(**credentials, bot="nimbus")
    async with BotApp(settings=chosen, bots=[shop, nimbus]) as app:
        channel = SlackChannel(app)
        try:
            assert channel.name == "nimbus"
        finally:
            await channel.aclose()
    unknown = settings(**credentials, bot="other")
    async with BotApp(settings=unknown, bots=[shop, nimbus]) as app:
        with pytest.raises(ConfigError, match="'other' is not one of the bots served"):
            SlackChannel(app)


def test_the_slack_bot_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTKIT_SLACK_BOT", "nimbus")
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("BOTKIT_SLACK_API_URL", "http://127.0.0.1:9/api/")
    loaded = Settings.from_environment()
    assert loaded.slack.bot == "nimbus"
    assert loaded.slack.bot_token is not None and loaded.slack.bot_token.get_secret_value() == TOKEN
    assert loaded.slack.api_url == "http://127.0.0.1:9/api/"
