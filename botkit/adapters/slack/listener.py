"""botkit's answers on Slack, for any bolt app: which events are the bot's, the inbox, and
the answer (`botkit.slack.register` puts it on your `AsyncApp`; the Slack channel of
`botkit serve` puts it on the process's own app, after the Slack desk).

    event → to_incoming and the thread rules (decided before the ack)
    → the inbox (kept until the answer is posted) → a tracked task, one conversation
    at a time → pipeline.stream → StreamWriter (threads) or ReplyWriter (placeholder, edits)

An accepted message is in the store's inbox before Slack is acknowledged when the
bolt app processes before responding (a store that fails means a 503, and Slack
delivers the event again). Slack re-delivers an event it thinks went unanswered,
and sends both `app_mention` and `message` for one mention: both are the same
message (channel + ts), the inbox's de-duplication key, so every worker sharing
the store answers each message exactly once; a message whose worker died is
answered by another (`resume`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck
from slack_sdk.errors import SlackApiError

from botkit.adapters.slack import feedback
from botkit.adapters.slack.events import (
    CHANNEL,
    MAX_AGE,
    BotIdentity,
    destination,
    is_addressed,
    is_direct,
    message_key,
    thread_key,
    to_incoming,
)
from botkit.adapters.slack.format import to_mrkdwn
from botkit.adapters.slack.payloads import check_command
from botkit.adapters.slack.reply import (
    Destination,
    ReplyWriter,
    StreamSupport,
    StreamWriter,
)
from botkit.adapters.streaming import stream_reply
from botkit.errors import DeliveryError, PayloadError, StoreError
from botkit.feedback import GONE
from botkit.inbox import settle
from botkit.locks import ConversationLocks
from botkit.messages import IncomingMessage, Reply
from botkit.stores.base import InboxItem

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

    from botkit.feedback import Votes
    from botkit.pipeline import Pipeline

logger = logging.getLogger(__name__)

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

Spawn = Callable[[Coroutine[Any, Any, None]], None]


class SlackListener:
    """Answers the messages a botkit bot should answer in Slack, with its pipeline.

    `client` posts the answers (a bot token's). Answers run after the ack, in tasks
    handed to `spawn` (the Slack app's, which lets them finish when it stops), else
    in tasks of its own that `aclose` lets finish. With `votes`, answers carry 👍/👎
    buttons (Block Kit, action ids `botkit_feedback_…`) whose clicks `on_feedback` takes.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        client: AsyncWebClient,
        spawn: Spawn | None = None,
        edit_interval: float = 1.0,
        votes: Votes | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.client = client
        self.votes = votes
        self.edit_interval = edit_interval
        self._spawn = spawn or self._own_task
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks = ConversationLocks()
        self._streams = StreamSupport()

    @property
    def name(self) -> str:
        return self.pipeline.bot.name

    # --- events: decided and stored before the ack, answered in a task afterwards ---

    async def on_event(
        self, event: Mapping[str, Any], body: Mapping[str, Any], me: BotIdentity
    ) -> bool:
        """Take a message the bot answers: keep it in the inbox and answer it after the ack.
        False for an event that is not the bot's. Raises `StoreError` (do not ack)."""
        incoming = to_incoming(event, bot=self.name, me=me)
        if incoming is None:
            return False
        where = destination(event)
        thread = (
            None
            if is_direct(event)
            else thread_key(self.name, where.channel, where.thread_ts or "")
        )
        store = self.pipeline.store
        if not is_addressed(event, me) and (
            thread is None or await store.get_record(thread) is None
        ):
            return False  # a thread the bot has no part in
        address = {
            "bot": self.name,
            "channel": where.channel,
            "thread_ts": where.thread_ts,
            "thread": thread,
            "files": bool(event.get("files")),
            "user": event.get("user"),
            "team": event.get("team") or body.get("team_id"),
        }
        item = await self.pipeline.accept(
            incoming, address=address, dedupe=message_key(self.name, event)
        )
        if item is not None:  # None: the same message again (a retry, or the mention's twin)
            self._spawn(self._carry_out(incoming, item))
        return True

    async def _carry_out(self, incoming: IncomingMessage, item: InboxItem) -> None:
        """Answer an accepted message, then let the inbox forget it (or try it later)."""
        # Held before anything is awaited, so a conversation's messages keep their order.
        async with self._locks.hold(incoming.conversation_key):
            await settle(self.pipeline.store, item, self._answer(incoming, item))

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
                await self.pipeline.store.put_record(
                    thread, {"at": time.time()}, ttl=THREAD_SECONDS
                )
            await self._reply(where, incoming, item, address)
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
        where: Destination,
        incoming: IncomingMessage,
        item: InboxItem,
        address: Mapping[str, Any],
    ) -> None:
        pipeline = self.pipeline
        writer = ReplyWriter(self.client, where)
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
        writer.buttons = lambda: self._buttons(incoming, stream.reply)
        shown: ReplyWriter | StreamWriter = writer
        if streaming and where.thread_ts is not None:
            user, team = address.get("user"), address.get("team")
            in_channel = not where.channel.startswith("D")  # a DM's reader is known
            recipient = (user, team) if user and team and in_channel else None
            shown = StreamWriter(self.client, where, writer, self._streams, recipient=recipient)
        await shown.start()

        async def deltas() -> AsyncIterator[str]:
            said = False
            async for delta in stream:
                said = said or bool(delta.strip())
                yield delta
            if not said:  # never leave the placeholder as the answer
                yield pipeline.composer.render("fallback", incoming)

        await stream_reply(shown, deltas(), self.edit_interval if streaming else None)

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

    # --- feedback: the buttons under answers ---

    def _buttons(self, incoming: IncomingMessage, reply: Reply | None) -> dict[str, Any] | None:
        votes = self.votes
        if votes is None or reply is None or reply.kind != "answer":
            return None
        if not votes.takes_votes(self.name):
            return None
        message_id = reply.in_reply_to or incoming.message_id
        return feedback.buttons(incoming.conversation_id, message_id) if message_id else None

    async def on_feedback(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        """A click on an answer's buttons: its vote (or the customer's `/human`) is stored
        before the ack; the buttons then show it, in a tracked task."""
        click = feedback.parse(action)
        user, channel, message = (body.get(key) or {} for key in ("user", "channel", "message"))
        user_id, channel_id = user.get("id"), channel.get("id")
        if (
            self.votes is None
            or click is None
            or not isinstance(user_id, str)
            or not isinstance(channel_id, str)
        ):
            await ack()
            return
        if click.score is None:
            await self._person_asked(ack, click, body, action)
            return
        result = await self.votes.cast(
            bot=self.name,
            channel=CHANNEL,
            conversation_id=click.conversation_id,
            message_id=click.message_id,
            user=user_id,
            score=click.score,
        )
        await ack()
        if result.status == "recorded" and isinstance(message.get("ts"), str):
            actions = feedback.buttons(
                click.conversation_id,
                click.message_id,
                chosen=click.score,
                offer=result.offer_person,
            )
            blocks = feedback.replaced(list(message.get("blocks") or []), actions)
            self._spawn(self._show_vote(channel_id, message, blocks))
        elif result.status == "gone":
            thread = message.get("thread_ts")
            self._spawn(self._note(channel_id, user_id, thread, GONE))

    async def _person_asked(
        self, ack: AsyncAck, click: feedback.Click, body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        """ "Talk to a person" under an answer: the customer's `/human`, accepted like any
        message of theirs (stored before the ack), then answered."""
        channel_id = str(body["channel"]["id"])
        thread_ts = (body.get("message") or {}).get("thread_ts")
        direct = channel_id.startswith("D")
        action_ts = str(action.get("action_ts") or "")
        user = body["user"]
        incoming = IncomingMessage(
            channel=CHANNEL,
            bot=self.name,
            conversation_id=click.conversation_id,
            user_id=str(user["id"]),
            text="/human",
            user_name=user.get("name"),
            message_id=f"fb{action_ts}",
        )
        address = {
            "bot": self.name,
            "channel": channel_id,
            "thread_ts": thread_ts,
            "thread": None if direct else thread_key(self.name, channel_id, thread_ts or ""),
            "files": False,
        }
        dedupe = f"slack:{self.name}:person:{channel_id}:{action_ts}"
        item = await self.pipeline.accept(incoming, address=address, dedupe=dedupe)
        await ack()
        if item is not None:
            self._spawn(self._carry_out(incoming, item))

    async def _show_vote(
        self, channel: str, message: dict[str, Any], blocks: list[dict[str, Any]]
    ) -> None:
        try:
            await self.client.chat_update(
                channel=channel, ts=message["ts"], text=message.get("text") or "", blocks=blocks
            )
        except SlackApiError as err:
            logger.info("bot %s: could not show a vote: %s", self.name, err.response.get("error"))

    async def _note(self, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        try:
            await self.client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts, text=text
            )
        except SlackApiError as err:
            logger.info("bot %s: could not post a note: %s", self.name, err.response.get("error"))

    # --- the slash command ---

    async def on_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """`/botkit help`, `/botkit reset`: answered to the user alone, in the ack itself.
        A replay (the same `trigger_id`) is acknowledged and does nothing."""
        try:
            check_command(command)
            first = await self.pipeline.store.claim(
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
            reply = await self.pipeline.handle(incoming)
            text = to_mrkdwn(reply.text if reply else "")
        except Exception:
            logger.exception("bot %s: the command %r failed", self.name, word)
            text = COMMAND_FAILED
        await ack(text=text, response_type="ephemeral")

    # --- tasks of its own ---

    def _own_task(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self, grace: float = 10.0) -> None:
        """Let the answers under way finish (a bounded wait), then cancel the rest; their
        inbox items come back to a worker once their lease runs out."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        if pending:
            logger.warning(
                "bot %s: %d replies still under way after %g s; cancelling them",
                self.name,
                len(pending),
                grace,
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
