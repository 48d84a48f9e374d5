"""botkit inside your own slack-bolt app, served by your own Starlette (or FastAPI) app.

Your `/orders` slash command is yours; botkit answers DMs, mentions and the threads it
took part in, from the bot's FAQ or its LLM, streamed.

    SLACK_BOT_TOKEN=xoxb-… SLACK_SIGNING_SECRET=… uvicorn --factory slack_app:main_app \\
        --app-dir examples --port 3000
    # Slack's Request URL (events and the slash command): https://YOUR-HOST/slack/events
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import botkit.slack
from botkit import BotApp, BotDefinition, Settings

SHOP = BotDefinition.from_values(
    "shop",
    system="You are the support assistant of a shop that sells boxes. Be brief.",
    faq={
        "hours": {
            "question": "When are you open?",
            "questions": ["opening hours"],
            "answer": "We are open Monday to Friday, 9:00 to 17:00.",
        },
    },
)


async def orders(ack: AsyncAck, command: dict[str, str]) -> None:
    await ack(f"<@{command['user_id']}>, you have 2 open orders: #1041 and #1042.")


def build_app(settings: Settings, *, client: AsyncWebClient, signing_secret: str) -> Starlette:
    """Your web app: Slack's requests at /slack/events, handled by your bolt app, on which
    botkit answers what your listeners leave."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with BotApp(settings=settings, bots=[SHOP]) as bots:
            # process_before_response: a message is stored before Slack is told it arrived.
            bolt = AsyncApp(
                client=client, signing_secret=signing_secret, process_before_response=True
            )
            bolt.command("/orders")(orders)
            listener = botkit.slack.register(bolt, bots.pipelines["shop"])
            app.state.slack = AsyncSlackRequestHandler(bolt)
            try:
                yield
            finally:
                await listener.aclose()  # let the answers under way finish

    async def events(request: Request) -> Response:
        handler: AsyncSlackRequestHandler = request.app.state.slack
        return await handler.handle(request)

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"])], lifespan=lifespan)


def main_app() -> Starlette:
    # from_environment: an LLM when BOTKIT_LLM_API_KEY or OPENAI_API_KEY is set, else the FAQ.
    return build_app(
        Settings.from_environment(),
        client=AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"]),
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    )
