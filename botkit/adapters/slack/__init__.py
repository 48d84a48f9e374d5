"""The Slack channel (slack-bolt, async): customers talking to a bot in Slack, on the
process's one Slack app (`app.py`: the Events API at `POST /slack/events` on the shared
HTTP server, or Socket Mode when an app-level token is set).

    event → signature checked → SlackApp → on_event (ignore rules, then the inbox)
    → ack → a tracked task: pipeline → placeholder → chat.update

An accepted message is in the store's inbox before Slack is acknowledged (a store
that fails means a 5xx, and Slack delivers the event again). Slack re-delivers an
event it thinks went unanswered, and sends both `app_mention` and `message` for
one mention: both are the same message (channel + ts), the inbox's de-duplication
key, so every worker sharing the store answers each message exactly once; a
message whose worker died is answered by another (`resume`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck
from slack_sdk.errors import SlackApiError
from starlette.routing import BaseRoute

from botkit.adapters import ServeOptions
from botkit.adapters.slack.app import EVENTS_PATH, SlackApp
from botkit.adapters.slack.events import (
    CHANNEL,
    MAX_AGE,
    destination,
    is_addressed,
    is_direct,
    message_key,
    thread_key,
    to_incoming,
)
from botkit.adapters.slack.format import to_mrkdwn
from botkit.adapters.slack.payloads import check_command
from botkit.adapters.slack.reply import Destination, ReplyWriter
from botkit.adapters.streaming import stream_reply
from botkit.errors import ConfigError, DeliveryError, PayloadError, Problem, StoreError
from botkit.inbox import settle
from botkit.locks import ConversationLocks
from botkit.messages import IncomingMessage
from botkit.stores.base import InboxItem

if TYPE_CHECKING:
    from botkit.app import BotApp
    from botkit.settings import SlackSettings

logger = logging.getLogger(__name__)

__all__ = ["EVENTS_PATH", "SlackApp", "SlackChannel", "build", "to_incoming"]

THREAD_SECONDS = 7 * 24 * 3600.0
"""How long the bot keeps answering a thread it took part in without a new mention."""
COMMAND_FAILED = "Sorry, that did not work. Please try again."
REPLAY_SECONDS = 2.0 * MAX_AGE
"""How long a slash command's trigger_id is remembered: a signed request is accepted
while its timestamp is within MAX_AGE of the clock, on either side."""
THREADS_ARE_CONVERSATIONS = (
    "In channels each thread is its own conversation: start a new thread to start fresh."
)
REFUSED = {
    "channel_not_found",
    "is_archived",
    "not_in_channel",
    "user_not_found",
    "account_inactive",
    "user_disabled",
    "cannot_dm_bot",
    "restricted_action",
}
"""Slack's answers that trying again will not change: the channel or person is out of reach."""


def build(app: BotApp, options: ServeOptions) -> SlackChannel:
    return SlackChannel(app)


class SlackChannel:
    """One botkit bot answering customers in a Slack workspace."""

    def __init__(
        self, app: BotApp, *, edit_interval: float = 1.0, shutdown_timeout: float = 10.0
    ) -> None:
        settings = app.settings.slack
        self.name = _served_bot(app, settings)
        self.bots = [self.name]
        self._pipeline = app.pipelines[self.name]
        self._store = app.store
        self._edit_interval = edit_interval
        self.slack = SlackApp.of(app, purpose="channel")
        self.slack.shutdown_timeout = shutdown_timeout
        self.slack.serving = self  # a Slack desk of the same process runs through this channel
        self.client = self.slack.client
        self.slack.on_event(self._on_event)
        self.slack.bolt.command("/" + settings.slash_command.lstrip("/"))(self._on_command)
        self._locks = ConversationLocks()

    @property
    def ready(self) -> bool:
        return self.slack.ready

    def routes(self) -> Sequence[BaseRoute]:
        return self.slack.routes()

    async def run(self) -> None:
        """Check the token; in Socket Mode, connect and take events until cancelled."""
        await self.slack.run()

    async def aclose(self) -> None:
        """Take no new events, let the replies under way finish (a bounded wait), disconnect."""
        await self.slack.aclose()

    # --- events: decided and stored before the ack, answered in a tracked task ---

    async def _on_event(self, event: dict[str, Any], body: dict[str, Any]) -> bool:
        me = self.slack.me(body)
        incoming = to_incoming(event, bot=self.name, me=me)
        if incoming is None:
            return False
        where = destination(event)
        thread = (
            None
            if is_direct(event)
            else thread_key(self.name, where.channel, where.thread_ts or "")
        )
        if not is_addressed(event, me) and (
            thread is None or await self._store.get_record(thread) is None
        ):
            return False  # a thread the bot has no part in
        address = {
            "bot": self.name,
            "channel": where.channel,
            "thread_ts": where.thread_ts,
            "thread": thread,
            "files": bool(event.get("files")),
        }
        item = await self._pipeline.accept(
            incoming, address=address, dedupe=message_key(self.name, event)
        )
        if item is not None:  # None: the same message again (a retry, or the mention's twin)
            self.slack.spawn(self._carry_out(incoming, item))
        return True

    async def _carry_out(self, incoming: IncomingMessage, item: InboxItem) -> None:
        """Answer an accepted message, then let the inbox forget it (or try it later)."""
        # Held before anything is awaited, so a conversation's messages keep their order.
        async with self._locks.hold(incoming.conversation_key):
            await settle(self._store, item, self._answer(incoming, item))

    async def resume(self, item: InboxItem) -> None:
        """A message a dead worker accepted, or a person's message for the customer."""
        if item.payload["kind"] == "message":
            incoming = IncomingMessage.from_json(item.payload["message"])
            async with self._locks.hold(incoming.conversation_key):
                await self._answer(incoming, item)
            return
        # In order: "Anna joined" before Anna's first message, taken up in one batch.
        async with self._locks.hold(item.conversation):
            await self._deliver(item.payload)

    async def _answer(self, incoming: IncomingMessage, item: InboxItem) -> None:
        """Answer in the message's thread or DM. A channel that refuses the bot is logged
        and given up; any other failure is raised, and the inbox tries it again later."""
        address = item.payload["address"]
        where = Destination(address["channel"], address.get("thread_ts"))
        try:
            if thread := address.get("thread"):
                await self._store.put_record(thread, {"at": time.time()}, ttl=THREAD_SECONDS)
            await self._reply(ReplyWriter(self.client, where), incoming, item, address)
        except SlackApiError as err:
            error = err.response.get("error")
            if error not in REFUSED:
                raise
            hint = " (invite the bot to the channel)" if error == "not_in_channel" else ""
            logger.warning(
                "bot %s: Slack refused to answer in %s: %s%s", self.name, where.channel, error, hint
            )

    async def _reply(
        self,
        writer: ReplyWriter,
        incoming: IncomingMessage,
        item: InboxItem,
        address: Mapping[str, Any],
    ) -> None:
        pipeline = self._pipeline
        if not incoming.text:  # files only, or a bare mention
            template = "unsupported" if address.get("files") else "welcome"
            await writer.show(pipeline.composer.render(template, incoming))
            return
        streaming = pipeline.bot.settings.streaming
        stream = pipeline.stream(incoming, item=item, incremental=streaming)
        if not await stream.begin():  # relayed to the person handling it: nothing to show
            async for _ in stream:
                pass
            return
        await writer.start()
        text = await stream_reply(writer, stream, self._edit_interval if streaming else 0.0)
        if not text.strip():
            await writer.show(pipeline.composer.render("fallback", incoming))

    async def _deliver(self, payload: Mapping[str, Any]) -> None:
        """A person's message (their name leading it) or a notice, in the customer's DM or
        thread; `DeliveryError` when Slack will not take it however often it is asked."""
        address = payload["address"]
        text = str(payload["text"])
        if agent := payload.get("agent"):
            text = f"**{agent}:** {text}"
        writer = ReplyWriter(self.client, Destination(address["channel"], address.get("thread_ts")))
        try:
            await writer.show(text)
        except SlackApiError as err:
            error = err.response.get("error")
            if error in REFUSED:
                raise DeliveryError(f"Slack refused: {error}") from err
            raise

    # --- the slash command ---

    async def _on_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """`/botkit help`, `/botkit reset`: answered to the user alone, in the ack itself.
        A replay (the same `trigger_id`) is acknowledged and does nothing."""
        try:
            check_command(command)
            first = await self._store.claim(
                f"slack:{self.name}:command:{command['trigger_id']}", ttl=REPLAY_SECONDS
            )
        except PayloadError as err:
            logger.warning("ignored a Slack slash command that botkit cannot read: %s", err)
            await ack()
            return
        except StoreError as err:
            logger.warning("bot %s: cannot run a slash command now: %s", self.name, err)
            await ack(text=COMMAND_FAILED, response_type="ephemeral")
            return
        if not first:
            await ack()  # a replay, or Socket Mode delivering the envelope again
            return
        word = str(command.get("text") or "").strip().lower()
        channel, user = str(command.get("channel_id", "")), str(command.get("user_id", ""))
        if word == "reset" and not channel.startswith("D"):
            await ack(text=THREADS_ARE_CONVERSATIONS, response_type="ephemeral")
            return
        incoming = IncomingMessage(
            channel=CHANNEL,
            bot=self.name,
            conversation_id=channel,
            user_id=user,
            text=f"/{word}" if word in ("reset", "start") else "/help",
            user_name=command.get("user_name"),
        )
        try:
            reply = await self._pipeline.handle(incoming)
            text = to_mrkdwn(reply.text if reply else "")
        except Exception:
            logger.exception("bot %s: the command %r failed", self.name, word)
            text = COMMAND_FAILED
        await ack(text=text, response_type="ephemeral")


def _served_bot(app: BotApp, settings: SlackSettings) -> str:
    names = [bot.name for bot in app.bots]
    if settings.bot is not None:
        if settings.bot not in names:
            message = f"{settings.bot!r} is not one of the bots served ({', '.join(names)})"
            raise ConfigError([Problem("BOTKIT_SLACK_BOT", message)])
        return settings.bot
    if len(names) != 1:
        message = f"one Slack app answers as one bot: name it ({', '.join(names)})"
        raise ConfigError([Problem("BOTKIT_SLACK_BOT", message)])
    return names[0]
