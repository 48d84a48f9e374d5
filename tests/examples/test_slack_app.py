"""examples/slack_app.py: a bolt app with its own /orders command and botkit's listener,
served by its own Starlette app, on the fake Slack API. The command is answered by the
app, messages by botkit; the events are signed and checked by bolt itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from botkit import Settings
from botkit.adapters.slack.reply import PLACEHOLDER
from tests.adapters.slack_api import (
    CHANNEL,
    DM,
    SECRET,
    TOKEN,
    USER,
    FakeSlackAPI,
    deliver,
    event_body,
    mention,
    message,
    slash_command,
)
from tests.examples import load_example
from tests.loopback import LoopbackServer

example = load_example("slack_app")
OPEN = "We are open Monday to Friday, 9:00 to 17:00."


@pytest.fixture
async def api() -> Any:
    async with FakeSlackAPI(streaming=True) as server:
        yield server


@asynccontextmanager
async def serving(api: FakeSlackAPI) -> AsyncIterator[str]:
    """The example's web app on a free port, its lifespan run; yields its events URL."""
    client = AsyncWebClient(token=TOKEN, base_url=api.base_url)
    app = example.build_app(
        Settings(store={"url": "memory://"}), client=client, signing_secret=SECRET
    )
    server = LoopbackServer(app, lifespan="on")
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}/slack/events"
    finally:
        await server.stop()


def texts(api: FakeSlackAPI, channel: str, thread_ts: str | None) -> list[str]:
    return [m.text for m in api.in_channel(channel) if m.thread_ts == thread_ts]


async def test_your_command_is_yours_and_messages_are_botkit_s(api: FakeSlackAPI) -> None:
    async with serving(api) as url:
        response = await slash_command(url, "", command="/orders")
        assert response.status_code == 200
        assert f"<@{USER}>, you have 2 open orders" in response.text
        await deliver(url, event_body(message("When are you open?", channel=DM)))
        await api.until(lambda: texts(api, DM, None) == [OPEN])
        event = mention("When are you open?")
        await deliver(url, event_body(event))
        await api.until(lambda: texts(api, CHANNEL, event["ts"]) == [OPEN])
        await api.settled()
    assert PLACEHOLDER not in [m.text for m in api.messages]
    assert api.called("auth.test")  # bolt asked who the bot is, as it does for any listener


async def test_chatter_is_acknowledged_and_left_alone(api: FakeSlackAPI) -> None:
    async with serving(api) as url:
        response = await deliver(url, event_body(message("Lunch, anyone?")))
        assert response.status_code == 200  # acknowledged: Slack does not send it again
        await api.settled()
    assert api.messages == []


async def test_a_request_bolt_cannot_verify_is_refused(api: FakeSlackAPI) -> None:
    async with serving(api) as url:
        response = await deliver(url, event_body(message("Hi", channel=DM)), secret="wrong")
        assert response.status_code == 401
        await api.settled()
    assert api.messages == []


async def test_a_redelivered_event_is_answered_once(api: FakeSlackAPI) -> None:
    async with serving(api) as url:
        body = event_body(message("When are you open?", channel=DM))
        for retry in (None, 1, 2):
            assert (await deliver(url, body, retry=retry)).status_code == 200
        await api.until(lambda: texts(api, DM, None) == [OPEN])
        await api.settled()
    assert texts(api, DM, None) == [OPEN]
