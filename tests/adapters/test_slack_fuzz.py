"""Fuzzing the Slack edge: what Slack sends (events, the desk's buttons, slash commands),
spoilt by hypothesis (a field deleted, or replaced by any JSON value at any depth) and
sent signed to a running channel with a Slack desk, against the fake Web API.

Every example gets a 2xx or bolt's 404 for a request nothing listens to (never a 5xx),
and the log gets no traceback. The examples are a fixed number, drawn the same way on
every run (`derandomize`), so CI sees the same ones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botkit.desks.slack import RESOLVE, TAKE
from botkit.home import BotHome
from botkit.testing import write_bot
from tests.adapters.edge_testing import spoiled, tracebacks
from tests.adapters.slack_api import (
    AGENT,
    BOT_USER,
    CHANNEL,
    DESK,
    DM,
    TEAM,
    USER,
    FakeSlackAPI,
    block_action,
    deliver,
    event_body,
    mention,
    message,
    serving,
    signed_headers,
)
from tests.conftest import SHOP_FAQ

FUZZ = settings(
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    # One bot served for all the examples of a test, on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
READ = [
    "type", "subtype", "user", "user_id", "channel", "channel_id", "channel_type", "ts",
    "thread_ts", "text", "hidden", "bot_id", "bot_profile", "user_profile", "files",
    "parent_user_id", "team", "team_id", "enterprise", "enterprise_id", "authorizations",
    "is_enterprise_install", "is_ext_shared_channel", "event", "item", "message",
    "previous_message", "assistant_thread", "view", "response_url", "response_urls",
    "function_data", "actions", "action_id", "value", "trigger_id", "challenge",
]  # fmt: skip
"""Fields the channel, the desk or bolt read: worth adding where they are missing."""


@dataclass
class Edge:
    url: str
    client: httpx.AsyncClient
    caplog: pytest.LogCaptureFixture
    post: Any  # the desk's post of a handoff, for its buttons

    @property
    def records(self) -> list[logging.LogRecord]:
        return self.caplog.records


@pytest.fixture
async def edge(home: Path, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Edge]:
    write_bot(
        home, "shop", faq=SHOP_FAQ, settings=f'[handoff]\ndesk = "slack"\nslack_channel = "{DESK}"'
    )
    with caplog.at_level(logging.INFO):
        async with (
            FakeSlackAPI() as api,
            serving(api, BotHome(home).load_checked("shop")) as bot,
            httpx.AsyncClient() as client,
        ):
            await deliver(bot.url, event_body(message(" /human", channel=DM)), client=client)
            await api.until(lambda: [m for m in api.in_channel(DESK) if m.thread_ts is None])
            post = next(m for m in api.in_channel(DESK) if m.thread_ts is None)
            yield Edge(bot.url, client, caplog, post)
            await api.settled()  # what the examples started has finished: its log is read
            assert tracebacks(caplog.get_records("call") + caplog.records) == []


def events(post: Any) -> st.SearchStrategy[Any]:
    thread = message("And on Sunday?", thread_ts="1700000000.000100")
    desk_reply = message("Hi Ann", channel=DESK, user=AGENT, thread_ts=post.ts)
    desk_reply["parent_user_id"] = BOT_USER
    changed = {"type": "message", "subtype": "message_changed", "hidden": True, "channel": DM,
               "ts": "1700000000.000300", "message": message("edited", channel=DM)}  # fmt: skip
    bodies = [
        event_body(message("When are you open?", channel=DM, user_profile={"real_name": "Ann"})),
        event_body(mention("Can I get a refund?")),
        event_body(thread),
        event_body(desk_reply),
        event_body(changed),
        event_body(message("", channel=DM, subtype="file_share", files=[{"id": "F1"}])),
        event_body({"type": "reaction_added", "user": USER, "reaction": "eyes",
                    "item": {"type": "message", "channel": CHANNEL, "ts": "1.2"}}),
        event_body({"type": "channel_created", "channel": {"id": "C9", "name": "new"}}),
        {"type": "url_verification", "token": "t", "challenge": "c"},
        {"type": "app_rate_limited", "team_id": TEAM, "minute_rate_limited": 1518467820},
    ]  # fmt: skip
    return st.sampled_from(bodies).flatmap(lambda body: spoiled(body, READ))


def clicks(post: Any) -> st.SearchStrategy[Any]:
    bodies = [block_action(post, TAKE), block_action(post, RESOLVE, user="UBOB00001")]
    shortcut = {"type": "shortcut", "callback_id": "x", "trigger_id": "1.2", "team": {"id": TEAM},
                "user": {"id": USER, "team_id": TEAM}}  # fmt: skip
    return st.sampled_from([*bodies, shortcut]).flatmap(lambda body: spoiled(body, READ))


@FUZZ
@given(data=st.data())
async def test_spoilt_events_get_a_200_and_no_traceback(edge: Edge, data: st.DataObject) -> None:
    body = data.draw(events(edge.post))
    seen = len(edge.records)
    response = await deliver(edge.url, json.dumps(body).encode(), client=edge.client)
    assert response.status_code == 200, response.text
    assert tracebacks(edge.records[seen:]) == []


@settings(FUZZ, max_examples=60)
@given(data=st.data())
async def test_spoilt_button_clicks_get_no_5xx_and_no_traceback(
    edge: Edge, data: st.DataObject
) -> None:
    payload = data.draw(clicks(edge.post))
    raw = urlencode({"payload": json.dumps(payload)}).encode()
    headers = signed_headers(raw, content_type="application/x-www-form-urlencoded")
    seen = len(edge.records)
    response = await edge.client.post(edge.url, content=raw, headers=headers)
    assert response.status_code in (200, 404), response.text  # 404: nothing listens to it
    assert tracebacks(edge.records[seen:]) == []


_FORM_TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
_COMMAND = {"token": "t", "team_id": TEAM, "channel_id": DM, "user_id": USER, "user_name": "ann",
            "command": "/botkit", "text": "help", "trigger_id": "1.2.3",
            "response_url": "https://hooks.slack.invalid/commands/1/2"}  # fmt: skip


@st.composite
def commands(draw: st.DrawFn) -> dict[str, str]:
    """A slash command's form with fields gone, changed or added (a form holds only text)."""
    form = dict(_COMMAND, text=draw(st.sampled_from(["help", "reset", "start", "", "payload"])))
    extra = ["payload", "ssl_check", "event", "authorizations", "team", "user", "enterprise"]
    for key in draw(st.lists(st.sampled_from(sorted(form) + extra), max_size=3)):
        if draw(st.booleans()):
            form.pop(key, None)
        else:
            form[key] = draw(_FORM_TEXT)
    return form


@settings(FUZZ, max_examples=40)
@given(form=commands())
async def test_spoilt_slash_commands_get_no_5xx_and_no_traceback(
    edge: Edge, form: dict[str, str]
) -> None:
    raw = urlencode(form).encode()
    headers = signed_headers(raw, content_type="application/x-www-form-urlencoded")
    seen = len(edge.records)
    response = await edge.client.post(edge.url, content=raw, headers=headers)
    assert response.status_code in (200, 400, 404), response.text
    assert tracebacks(edge.records[seen:]) == []
