"""botkit on your own slack-bolt `AsyncApp`, beside your listeners and commands:

    bolt = AsyncApp(token=SLACK_BOT_TOKEN, signing_secret=SECRET, process_before_response=True)
    bolt.command("/orders")(orders)                                  # yours
    listener = botkit.slack.register(bolt, bots.pipelines["shop"])   # after your message listeners
    ...
    await listener.aclose()    # on shutdown: lets the answers under way finish

It answers DMs, mentions and the threads it took part in, as `botkit serve --channel
slack` does (this same listener): an hourglass at once, then the answer, streamed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse

from botkit.adapters.slack.events import BotIdentity, to_incoming
from botkit.adapters.slack.listener import SlackListener
from botkit.errors import StoreError

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

    from botkit.pipeline import Pipeline

__all__ = ["BotIdentity", "SlackListener", "register", "to_incoming"]

logger = logging.getLogger(__name__)


def register(
    bolt_app: AsyncApp,
    pipeline: Pipeline,
    *,
    command: str | None = None,
    client: AsyncWebClient | None = None,
    edit_interval: float = 1.0,
) -> SlackListener:
    """Answer a bot's messages (`BotApp.pipelines[NAME]`) on your bolt app.

    It listens to `message` and `app_mention` events: register it after your own
    message listeners, since bolt runs the first listener that matches, and botkit's
    acknowledges every message event (Slack would send an unacknowledged one again).
    `command` (e.g. "/support") also gives `help` and `reset` as a slash command.
    Answers are posted with `client`, by default the app's (a bot token's); with
    `process_before_response=True` a message is in the store before Slack is told it
    arrived, and a store that fails means a 503, so that Slack sends it again.
    """
    listener = SlackListener(
        pipeline, client=client or bolt_app.client, edit_interval=edit_interval
    )

    async def on_message(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> BoltResponse | None:
        me = BotIdentity(context.bot_user_id or "", context.bot_id)
        try:
            await listener.on_event(event, body, me)
        except StoreError as err:
            logger.warning("cannot store a Slack event (%s); Slack will send it again", err)
            return BoltResponse(status=503, body="cannot store the event now")
        return None

    bolt_app.event("message")(on_message)
    bolt_app.event("app_mention")(on_message)
    if command is not None:
        bolt_app.command("/" + command.lstrip("/"))(listener.on_command)
    return listener
