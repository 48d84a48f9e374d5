"""botkit's listener on a bolt app of the user's own, beyond answering: a conversation
handed over to a person (the customer's messages go to the desk, the person's reach the
DM through the inbox worker the user runs beside it), and the slash command it offers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import botkit.slack
from botkit import BotApp, BotDefinition, Settings, StoreSettings
from botkit.inbox import InboxWorker
from botkit.testing import FakeDesk
from tests.adapters.slack_api import (
    DM,
    SECRET,
    TOKEN,
    FakeSlackAPI,
    deliver,
    event_body,
    message,
    slash_command,
)
from tests.loopback import LoopbackServer

SHOP = BotDefinition.from_values(
    "shop",
    system="You help customers of a shop.",
    settings={"handoff": {"desk": "webhook", "webhook_url": "http://desk.invalid/events"}},
)


@asynccontextmanager
async def serving(api: FakeSlackAPI, desk: FakeDesk) -> AsyncIterator[tuple[str, BotApp]]:
    settings = Settings(store=StoreSettings(url="memory://"))
    async with BotApp(settings=settings, bots=[SHOP], desks={"shop": desk}) as bots:
        client = AsyncWebClient(token=TOKEN, base_url=api.base_url)
        bolt = AsyncApp(client=client, signing_secret=SECRET, process_before_response=True)
        listener = botkit.slack.register(bolt, bots.pipelines["shop"], command="/support")
        handler = AsyncSlackRequestHandler(bolt)

        async def events(request: Request) -> Response:
            return await handler.handle(request)

        server = LoopbackServer(
            Starlette(routes=[Route("/slack/events", events, methods=["POST"])])
        )
        worker = InboxWorker(
            bots.store, {"slack": (listener, ["shop"])}, handoffs=bots.handoffs, poll=0.05
        )
        await server.start()
        task = asyncio.create_task(worker.run())
        try:
            yield f"http://127.0.0.1:{server.port}/slack/events", bots
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await worker.aclose()
            await server.stop()
            await listener.aclose()


def texts(api: FakeSlackAPI) -> list[str]:
    return [m.text for m in api.in_channel(DM) if m.thread_ts is None]


async def test_a_person_takes_over_and_their_messages_reach_the_dm() -> None:
    desk = FakeDesk()
    async with FakeSlackAPI() as api, serving(api, desk) as (url, bots):
        await deliver(url, event_body(message(" /human", channel=DM)))
        await api.until(lambda: desk.shown and texts(api) and ":hourglass" not in texts(api)[0])
        ((handoff, _),) = desk.shown
        await deliver(url, event_body(message("Are you there?", channel=DM)))
        await api.until(lambda: desk.relayed)
        await bots.handoffs.say(handoff.id, agent_id="U1", agent_name="Anna", text="Hi, I'm Anna.")
        await api.until(lambda: len(texts(api)) == 3)
    notice, joined, said = texts(api)
    assert "handing you over to a person" in notice
    assert joined == "Anna from our team has joined the conversation."
    assert said == "*Anna:* Hi, I'm Anna."  # their name, in bold
    assert desk.relayed == [(handoff.id, "Are you there?")]  # never answered by the bot


async def test_the_slash_command_it_was_given_answers_help() -> None:
    async with FakeSlackAPI() as api, serving(api, FakeDesk()) as (url, _):
        response = await slash_command(url, "help", command="/support")
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_type"] == "ephemeral" and "/reset" in answer["text"]
