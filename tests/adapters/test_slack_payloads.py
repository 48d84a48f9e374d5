"""Signed Slack requests whose fields have the wrong types (the audit's: `"subtype": {}`,
objects where strings belong, lists where objects belong, huge numbers): each is
acknowledged with one warning line naming the field, no traceback, nothing answered.
And slash commands: a replay (the same trigger_id) is acknowledged and does nothing."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from botkit.adapters.slack.payloads import check_envelope, check_event, check_request
from botkit.desks.slack import TAKE
from botkit.errors import PayloadError
from botkit.home import BotDefinition, BotHome
from botkit.messages import conversation_key
from botkit.testing import write_bot
from tests.adapters.edge_testing import tracebacks, unreadable
from tests.adapters.slack_api import (
    APP_TOKEN,
    CHANNEL,
    DESK,
    DM,
    SECRET,
    TEAM,
    TOKEN,
    USER,
    FakeSlackAPI,
    Served,
    block_action,
    deliver,
    event_body,
    free_port,
    interact,
    mention,
    message,
    serving,
    signed_headers,
    slash_command,
)
from tests.adapters.test_slack_cli import environment, until_listening
from tests.conftest import SHOP_FAQ

OPEN = "We are open Monday to Friday, 9:00 to 17:00."
DM_KEY = conversation_key("shop", "slack", DM)


@pytest.fixture
async def api() -> Any:
    async with FakeSlackAPI() as server:
        yield server


@pytest.fixture
def shop_with_desk(home: Path) -> BotDefinition:
    write_bot(
        home,
        "shop",
        faq=SHOP_FAQ,
        settings=f'[handoff]\ndesk = "slack"\nslack_channel = "{DESK}"\n',
    )
    return BotHome(home).load_checked("shop")


def in_dm(**fields: Any) -> dict[str, Any]:
    """A signed DM event, `fields` replacing the event's own."""
    return event_body({**message("When are you open?", channel=DM), **fields})


def with_body(**fields: Any) -> dict[str, Any]:
    """A DM event, `fields` replacing the body's own."""
    return {**event_body(message("When are you open?", channel=DM)), **fields}


BAD_EVENTS: list[tuple[str, dict[str, Any], str]] = [
    ("subtype object", in_dm(subtype={}), "event.subtype: an object where a string belongs"),
    ("channel object", in_dm(channel={"id": DM}), "event.channel: an object where a string"),
    ("user list", in_dm(user=[USER]), "event.user: an array where a string belongs"),
    ("text object", in_dm(text={"text": "hi"}), "event.text: an object where a string"),
    ("ts number", in_dm(ts=1700000000.5), "event.ts: a number where a string belongs"),
    ("ts too large", in_dm(ts="1e400"), "event.ts: '1e400' is not a Slack timestamp"),
    ("thread_ts list", in_dm(thread_ts=["1.2"]), "event.thread_ts: an array where a string"),
    ("profile list", in_dm(user_profile=["Ann"]), "event.user_profile: an array where an object"),
    ("name object", in_dm(user_profile={"display_name": {}}), "event.user_profile.display_name"),
    ("files object", in_dm(files={"id": "F1"}), "event.files: an object where an array belongs"),
    ("hidden text", in_dm(hidden="no"), "event.hidden: a string where a boolean belongs"),
    ("event list", with_body(event=[message("hi", channel=DM)]), "event: an array where an object"),
    ("event missing", with_body(event=None), "event: null where an object belongs"),
    ("authorizations object", with_body(authorizations={"user_id": "U1"}), "authorizations: an"),
    ("authorization list", with_body(authorizations=[[1]]), "authorizations.0: an array where"),
    ("team number", with_body(team_id=7), "team_id: a number where a string belongs"),
    ("huge number", with_body(event_time=10**30), "Integer exceeds 64-bit range"),
    ("lone surrogate", in_dm(text="caf\ud800"), "surrogates not allowed"),
    ("type object", with_body(type={"t": "event_callback"}), "type: an object where a string"),
    ("no type", {"token": "t", "team_id": TEAM}, "type: missing"),
    ("no challenge", {"type": "url_verification"}, "challenge: missing"),
]


# --- what is checked ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "problem"), [case[1:] for case in BAD_EVENTS], ids=[case[0] for case in BAD_EVENTS]
)
def test_a_badly_typed_field_is_named(body: dict[str, Any], problem: str) -> None:
    with pytest.raises(PayloadError) as caught:
        check_request(body, form=False)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    "event",
    [
        message("When are you open?", channel=DM, user_profile={"display_name": "Ann"}),
        mention("When are you open?", thread_ts="1700000000.000100"),
        message("", channel=DM, subtype="file_share", files=[{"id": "F1"}]),
        {"type": "message", "subtype": "message_changed", "hidden": True, "channel": CHANNEL,
         "ts": "1700000000.000200", "message": {"user": USER, "text": "x", "ts": "1.2"}},
        {"type": "reaction_added", "user": USER, "reaction": "thumbsup",
         "item": {"type": "message", "channel": CHANNEL, "ts": "1700000000.000100"}},
        {"type": "channel_created", "channel": {"id": "C9", "name": "new", "creator": USER}},
        {"type": "user_change", "user": {"id": USER, "team_id": TEAM, "profile": {}}},
        {"type": "app_home_opened", "user": USER, "channel": DM, "tab": "home",
         "view": {"team_id": TEAM, "type": "home"}},
        {"type": "tokens_revoked", "tokens": {"oauth": [USER], "bot": []}},
    ],
)  # fmt: skip
def test_what_slack_sends_passes(event: dict[str, Any]) -> None:
    check_request(event_body(event), form=False)
    check_event(event)
    check_envelope("events_api", event_body(event))


def test_interactivity_and_commands_are_checked_as_forms() -> None:
    form = {"command": "/botkit", "text": "help", "user_id": USER, "channel_id": DM,
            "trigger_id": "1.2.3"}  # fmt: skip
    check_request(form, form=True)
    check_envelope("slash_commands", form)
    with pytest.raises(PayloadError, match="^trigger_id: missing$"):
        check_request({k: v for k, v in form.items() if k != "trigger_id"}, form=True)
    with pytest.raises(PayloadError, match="^user_name: an object where a string belongs$"):
        check_envelope("slash_commands", {**form, "user_name": {}})
    payload = {"type": "block_actions", "actions": [{"action_id": TAKE, "value": 7}]}
    with pytest.raises(PayloadError, match=r"^payload\.actions\.0\.value: a number where"):
        check_request({"payload": json.dumps(payload)}, form=True)
    with pytest.raises(PayloadError, match=r"^payload: not JSON"):
        check_request({"payload": "{"}, form=True)


# --- served: acknowledged, one warning, nothing else ------------------------------------


async def each_once(
    caplog: pytest.LogCaptureFixture,
    api: FakeSlackAPI,
    cases: list[tuple[str, Any, str]],
    send: Callable[[Any], Any],
) -> None:
    """Send each case; each gets a 200 and exactly one warning naming its field."""
    for name, body, problem in cases:
        before = len(unreadable(caplog.records))
        response = await send(body)
        assert response.status_code == 200, (name, response.status_code, response.text)
        await api.settled(0.05)
        warnings = unreadable(caplog.records)[before:]
        assert len(warnings) == 1 and problem in warnings[0], (name, warnings)
    assert tracebacks(caplog.records) == []


async def test_badly_typed_events_are_acknowledged_and_left_alone(
    api: FakeSlackAPI, shop_with_desk: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        async with serving(api, shop_with_desk) as bot:
            await each_once(caplog, api, BAD_EVENTS, lambda body: deliver(bot.url, body))
            assert [c.method for c in api.calls] == ["auth.test"]  # nothing answered
            assert await bot.app.store.recent(DM_KEY, 10) == []  # nor kept
            await deliver(bot.url, in_dm())
            await api.until(lambda: [m.text for m in api.in_channel(DM)] == [OPEN])


async def test_an_event_naming_its_channel_by_an_object_passes_the_desk(
    api: FakeSlackAPI, shop_with_desk: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression: the desk looked the channel up in a set ("unhashable type: 'dict'").
    created = {"type": "channel_created", "channel": {"id": "C9", "name": "new", "creator": USER}}
    with caplog.at_level(logging.INFO):
        async with serving(api, shop_with_desk) as bot:
            response = await deliver(bot.url, event_body(created))
            await api.settled()
    assert response.status_code == 200
    assert tracebacks(caplog.records) == [] and unreadable(caplog.records) == []


async def handed_off(api: FakeSlackAPI, bot: Served) -> Any:
    await deliver(bot.url, event_body(message(" /human", channel=DM)))
    await api.until(lambda: [m for m in api.in_channel(DESK) if m.thread_ts is None])
    await api.settled()
    return next(m for m in api.in_channel(DESK) if m.thread_ts is None)


async def test_badly_typed_button_clicks_change_nothing(
    api: FakeSlackAPI, shop_with_desk: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        async with serving(api, shop_with_desk) as bot:
            post = await handed_off(api, bot)
            click = block_action(post, TAKE)
            action = click["actions"][0]
            cases = [
                ("no action", {**click, "actions": []}, "payload.actions: empty"),
                ("actions object", {**click, "actions": action}, "payload.actions: an object"),
                ("action_id number", {**click, "actions": [{**action, "action_id": 5}]},
                 "payload.actions.0.action_id: a number where a string belongs"),
                ("value object", {**click, "actions": [{**action, "value": {}}]},
                 "payload.actions.0.value: an object where a string belongs"),
                ("user id object", {**click, "user": {"id": {"id": "U1"}}},
                 "payload.user.id: an object where a string belongs"),
                ("message ts list", {**click, "message": {**click["message"], "ts": [post.ts]}},
                 "payload.message.ts: an array where a string belongs"),
                ("team number", {**click, "team": 12}, "payload.team: a number where a string"),
            ]  # fmt: skip
            calls = len(api.calls)
            await each_once(caplog, api, cases, lambda payload: interact(bot.url, payload))
            assert api.calls[calls:] == [] and api.ephemerals == []
            handoff = await bot.app.store.handoff_by_desk(f"{DESK}:{post.ts}")
    assert handoff is not None and handoff.state == "waiting"


async def test_a_slash_command_without_its_trigger_id_does_nothing(
    api: FakeSlackAPI, shop: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    form = {"command": "/botkit", "text": "reset", "channel_id": DM, "user_id": USER}
    raw = urlencode(form).encode()
    headers = signed_headers(raw, content_type="application/x-www-form-urlencoded")
    with caplog.at_level(logging.INFO):
        async with serving(api, shop) as bot, httpx.AsyncClient() as client:
            response = await client.post(bot.url, content=raw, headers=headers)
    assert (response.status_code, response.text) == (200, "")
    assert unreadable(caplog.records) == [
        "ignored a Slack slash command that botkit cannot read: trigger_id: missing"
    ]


async def test_a_slash_command_about_a_payload_is_answered(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    # Regression: bolt takes any form whose text contains "payload" for an interactivity
    # payload, so this command was a 404 ("unhandled request").
    async with serving(api, shop) as bot:
        response = await slash_command(bot.url, "what is a payload?")
    assert response.status_code == 200 and response.json()["response_type"] == "ephemeral"


async def test_socket_mode_envelopes_are_checked_too(
    api: FakeSlackAPI, shop: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    command = {"command": "/botkit", "text": "help", "user_id": USER, "channel_id": DM,
               "user_name": {"name": "ann"}, "trigger_id": "1.2.3"}  # fmt: skip
    with caplog.at_level(logging.INFO):
        async with serving(api, shop, app_token=APP_TOKEN, signing_secret=None):
            envelopes = [
                await api.push(in_dm(subtype={})),
                await api.push(command, kind="slash_commands"),
                await api.push({"type": "block_actions", "actions": []}, kind="interactive"),
            ]
            await api.until(lambda: set(envelopes) <= {a["envelope_id"] for a in api.acks})
            await api.settled()
    assert [a for a in api.acks if "payload" in a] == []  # acknowledged, and nothing said
    assert [w.split(": ", 1)[1] for w in unreadable(caplog.records)] == [
        "event.subtype: an object where a string belongs",
        "user_name: an object where a string belongs",
        "actions: empty",
    ]
    assert tracebacks(caplog.records) == []
    assert api.called("chat.postMessage") == []


# --- replayed slash commands -------------------------------------------------------------


_triggers = itertools.count(1)


def signed_command(text: str) -> tuple[bytes, dict[str, str]]:
    """A slash command as Slack signs it, to be sent as often as an attacker likes."""
    trigger_id = f"{next(_triggers)}.{TEAM}.replayed"
    form = {"token": "t", "team_id": TEAM, "channel_id": DM, "user_id": USER, "user_name": "ann",
            "command": "/botkit", "text": text, "trigger_id": trigger_id,
            "response_url": "https://hooks.slack.invalid/commands/1/2"}  # fmt: skip
    raw = urlencode(form).encode()
    return raw, signed_headers(raw, content_type="application/x-www-form-urlencoded")


async def chat_then_reset(
    api: FakeSlackAPI, bot: Served, client: httpx.AsyncClient, command: tuple[bytes, Any]
) -> httpx.Response:
    """A DM answered (so there is a conversation to forget), then the command sent."""
    answered = len(api.in_channel(DM))
    await deliver(bot.url, in_dm(), client=client)
    await api.until(lambda: len(api.in_channel(DM)) == answered + 1)
    await api.until(lambda: api.in_channel(DM)[-1].text == OPEN)
    raw, headers = command
    return await client.post(bot.url, content=raw, headers=headers)


async def test_a_replayed_slash_command_does_nothing(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    reset = signed_command("reset")
    async with serving(api, shop) as bot, httpx.AsyncClient() as client:
        first = await chat_then_reset(api, bot, client, reset)
        assert first.status_code == 200 and "forgotten" in first.json()["text"]
        assert await bot.app.store.recent(DM_KEY, 10) == []
        replays = [await chat_then_reset(api, bot, client, reset) for _ in range(3)]
        kept = await bot.app.store.recent(DM_KEY, 10)
        raw, headers = signed_command("help")
        other = await client.post(bot.url, content=raw, headers=headers)
    assert [(r.status_code, r.text) for r in replays] == [(200, "")] * 3
    assert len(kept) == 6  # three questions and their answers: nothing was forgotten again
    assert other.status_code == 200 and other.json()["text"].strip()


async def test_a_replay_to_another_worker_does_nothing_either(
    api: FakeSlackAPI, shop: BotDefinition, home: Path
) -> None:
    store = f"sqlite:///{home / 'shared.db'}"
    port = free_port()
    env = environment(home, SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET,
                      BOTKIT_SLACK_API_URL=api.base_url, BOTKIT_STORE_URL=store)  # fmt: skip
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botkit", "serve", "shop", "--channel", "slack", "--port", str(port),
        env=env, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    reset = signed_command("reset")
    try:
        other_url = f"http://127.0.0.1:{port}/slack/events"
        await until_listening(other_url, other)
        async with serving(api, shop, store=store) as bot, httpx.AsyncClient() as client:
            first = await chat_then_reset(api, bot, client, reset)
            assert "forgotten" in first.json()["text"]
            await deliver(bot.url, in_dm(), client=client)
            await api.until(lambda: [m.text for m in api.in_channel(DM)][-2:] == [OPEN, OPEN])
            replay = await client.post(other_url, content=reset[0], headers=reset[1])
            kept = await bot.app.store.recent(DM_KEY, 10)
    finally:
        other.send_signal(signal.SIGTERM)
        await other.wait()
    assert (replay.status_code, replay.text) == (200, "")
    assert len(kept) == 2
