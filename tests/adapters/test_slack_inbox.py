"""The Slack channel on the store's inbox: a message is stored before Slack is told it
arrived, the acknowledgement never waits for the Web API, and a message whose worker
died after acknowledging it is answered by another worker."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest

from botkit.errors import StoreError
from botkit.home import BotDefinition
from botkit.messages import conversation_key
from tests.adapters.slack_api import (
    DM,
    SECRET,
    TOKEN,
    FakeSlackAPI,
    deliver,
    event_body,
    free_port,
    message,
    serving,
)
from tests.adapters.test_slack_cli import environment, until_listening

OPEN = "We are open Monday to Friday, 9:00 to 17:00."
DM_KEY = conversation_key("shop", "slack", DM)


@pytest.fixture
async def api() -> Any:
    async with FakeSlackAPI() as server:
        yield server


def answers(api: FakeSlackAPI) -> list[str]:
    return [m.text for m in api.in_channel(DM)]


async def test_a_message_the_store_cannot_keep_is_not_acknowledged(
    api: FakeSlackAPI, shop: BotDefinition, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(api, shop) as bot:
        store = bot.app.store

        async def down(**item: Any) -> None:
            raise StoreError("the store is unreachable")

        with monkeypatch.context() as patched:
            patched.setattr(store, "inbox_add", down)
            body = event_body(message("When are you open?", channel=DM))
            refused = await deliver(bot.url, body)
            await api.settled()
            assert refused.status_code == 503  # Slack delivers it again later
            assert api.called("chat.postMessage") == []
            assert await store.recent(DM_KEY, 10) == []
        again = await deliver(bot.url, body, retry=1)
        assert again.status_code == 200
        await api.until(lambda: answers(api) == [OPEN])
        await api.settled()
    assert answers(api) == [OPEN]


async def test_events_are_acknowledged_while_the_web_api_is_unreachable(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    # Regression: bolt asked auth.test for every request until one succeeded, so with
    # Slack's Web API unreachable every signed event got a 500 (after about a second).
    unreachable = f"http://127.0.0.1:{free_port()}/api/"
    async with serving(api, shop, api_url=unreachable) as bot:
        body = event_body(message("When are you open?", channel=DM))
        statuses = [(await deliver(bot.url, body, retry=n or None)).status_code for n in range(5)]
        assert statuses == [200] * 5

        async with httpx.AsyncClient() as client:

            async def redeliver(times: int) -> int:  # Slack sending the event again and again
                for _ in range(times):
                    assert (await deliver(bot.url, body, retry=1, client=client)).status_code == 200
                gc.collect()
                return tracemalloc.get_traced_memory()[0]

            tracemalloc.start()
            try:
                before = await redeliver(50)
                after = await redeliver(200)
            finally:
                tracemalloc.stop()
            ready = await client.get(f"http://127.0.0.1:{bot.port}/readyz")
        stored = await bot.app.store.recent(DM_KEY, 10)
    assert after - before < 100_000, f"{after - before} bytes more after 200 more requests"
    assert ready.status_code == 503  # not ready: Slack does not know it yet…
    assert [turn.content for turn in stored] == ["When are you open?"]  # …but it was kept


async def test_a_message_whose_worker_died_after_the_ack_is_answered_by_another(
    api: FakeSlackAPI, shop: BotDefinition, home: Path
) -> None:
    store = f"sqlite:///{home / 'shared.db'}"
    port = free_port()
    env = environment(
        home,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        BOTKIT_SLACK_API_URL=api.base_url,
        BOTKIT_STORE_URL=store,
        BOTKIT_STORE_LEASE="1",
    )
    stalled = api.stall("chat.postMessage")  # the first worker gets no further than this
    first = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botkit", "serve", "shop", "--channel", "slack", "--port", str(port),
        env=env, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/slack/events"
        await until_listening(url, first)
        response = await deliver(url, event_body(message("When are you open?", channel=DM)))
        assert response.status_code == 200
        await api.until(lambda: api.called("chat.postMessage"), within=30)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    stalled.set()  # the dead worker's call had no effect
    del api.stalled["chat.postMessage"]
    async with serving(api, shop, store=store, lease=1.0) as bot:
        await api.until(lambda: answers(api) == [OPEN], within=30)
        await api.settled(0.5)
        history = await bot.app.store.recent(DM_KEY, 10)
    assert answers(api) == [OPEN]
    assert [turn.content for turn in history] == ["When are you open?", OPEN]
