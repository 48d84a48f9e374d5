"""The Slack channel in Socket Mode: events over the WebSocket that apps.connections.open
hands out, acknowledged by envelope id, answered through the Web API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from botkit.adapters.slack import SlackChannel
from botkit.app import BotApp
from botkit.errors import ConfigError, StoreError
from botkit.home import BotDefinition
from botkit.settings import Settings
from tests.adapters.slack_api import (
    APP_TOKEN,
    CHANNEL,
    DM,
    TOKEN,
    FakeSlackAPI,
    event_body,
    mention,
    message,
    serving,
)

OPEN = "We are open Monday to Friday, 9:00 to 17:00."


@pytest.fixture
async def api() -> Any:
    async with FakeSlackAPI() as server:
        yield server


async def test_socket_mode_acknowledges_and_answers_without_an_http_endpoint(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop, app_token=APP_TOKEN, signing_secret=None) as bot:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bot.port}") as http:
            # The HTTP server runs for health and metrics, but Slack has no route on it.
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.post("/slack/events", content=b"{}")).status_code == 404
        event = mention("When are you open?")
        envelope = await api.push(event_body(event))
        twin = await api.push(event_body(message(event["text"], ts=event["ts"])))
        dm = await api.push(event_body(message("When are you open?", channel=DM)))
        await api.until(lambda: {envelope, twin, dm} <= {a["envelope_id"] for a in api.acks})
        await api.until(lambda: [m.text for m in api.in_channel(CHANNEL)] == [OPEN])
        await api.until(lambda: [m.text for m in api.in_channel(DM)] == [OPEN])
        await api.settled()
    assert len(api.called("apps.connections.open")) == 1
    assert api.thread(CHANNEL, event["ts"])[0].text == OPEN
    assert len(api.called("chat.postMessage")) == 2
    assert not api.connected  # it hung up on the way out


async def test_an_app_token_slack_rejects_is_a_config_error(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    slack = {"bot_token": TOKEN, "app_token": "xapp-revoked", "api_url": api.base_url}
    async with BotApp(
        settings=Settings(store={"url": "memory://"}, slack=slack), bots=[shop]
    ) as app:
        channel = SlackChannel(app)
        try:
            with pytest.raises(ConfigError, match=r"SLACK_APP_TOKEN: Slack rejected the token"):
                await channel.run()
        finally:
            await channel.aclose()


async def test_an_event_the_store_cannot_keep_is_not_acknowledged(
    api: FakeSlackAPI, shop: BotDefinition, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(api, shop, app_token=APP_TOKEN, signing_secret=None) as bot:

        async def down(**item: Any) -> None:
            raise StoreError("the store is unreachable")

        body = event_body(message("When are you open?", channel=DM))
        with monkeypatch.context() as patched:
            patched.setattr(bot.app.store, "inbox_add", down)
            refused = await api.push(body)
            await api.settled()
        assert refused not in {ack["envelope_id"] for ack in api.acks}  # Slack sends it again
        assert api.called("chat.postMessage") == []
        again = await api.push(body)
        await api.until(lambda: again in {ack["envelope_id"] for ack in api.acks})
        await api.until(lambda: [m.text for m in api.in_channel(DM)] == [OPEN])
