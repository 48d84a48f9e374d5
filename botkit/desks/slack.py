"""The Slack desk: people take handed-over conversations in a Slack channel.

    a handoff          → a message in the bot's `slack_channel`: who, on which channel,
                         why, the last turns, and Take and Resolve buttons; its thread
                         is the conversation at the desk (the handoff's `desk_ref`)
    the customer writes → posted in the thread
    Take               → the person who clicked handles it: "Taken by Anna"
    a reply in the thread → to the customer, as that person's (replying takes it too)
    Resolve, or `resolve` alone in the thread → back to the bot

Both halves run on the process's one Slack app (`botkit.adapters.slack.app`), so the
desk works beside a Telegram bot alone or in the very app that answers employees
in Slack. A person's mistake (a reply in a thread that is no handoff, a Take or a
reply after the resolve) reaches no customer; they get a note only they can see.

A person's reply is kept in the store's inbox before Slack is told it arrived: if its
worker dies before passing it on, another worker serving the bot does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck
from slack_sdk.errors import SlackApiError

from botkit.adapters.slack.app import SHARED_KEY, SlackApp
from botkit.adapters.slack.events import is_addressed, is_ignored, plain_text
from botkit.adapters.slack.format import escape
from botkit.adapters.slack.payloads import check_interaction
from botkit.errors import ConfigError, PayloadError
from botkit.handoff import Outcome
from botkit.inbox import settle
from botkit.messages import Handoff, Turn
from botkit.pipeline import inbox_channel
from botkit.stores.base import InboxItem

if TYPE_CHECKING:
    from botkit.adapters import Channel, ServeOptions
    from botkit.app import BotApp

__all__ = ["RESOLVE", "TAKE", "DeskListener", "SlackDesk", "desk", "serve"]

logger = logging.getLogger(__name__)

TAKE = "botkit_handoff_take"
RESOLVE = "botkit_handoff_resolve"
RECORD_SECONDS = 30 * 24 * 3600.0
"""How long the top of a desk message is kept, to redraw it when the handoff changes."""
SEEN_SECONDS = 3600.0
"""How long a person's reply is remembered; Slack's retries come within minutes."""
TURN_CHARS = 300
SECTION_CHARS = 2900  # Slack refuses a section text over 3,000 characters
NAMES_KEPT = 1000

WHERE = {"telegram": "Telegram", "slack": "Slack", "web": "the web page", "console": "the console"}
WHY = {
    "command": "asked for a person",
    "faq": "asked for a person",
    "fallbacks": "the bot could not answer",
    "tool": "the assistant handed it over",
    "api": "handed over through the API",
}
NOTES: Mapping[Outcome, str] = {
    "unknown": "This handoff is not known here, so nothing was sent to anyone.",
    "closed": "This conversation is already back with the bot: nothing was sent to the customer.",
    "taken": "{agent} has already taken this conversation.",
    "done": "",
}
LISTENER_KEY = "slack-desk"
"""Where a `BotApp` keeps its desk listener (`app.shared`)."""
INBOX = "slack-desk"
"""The inbox's channel name for people's replies not yet passed on (`INBOX/bot`)."""
NO_HANDOFF = "This thread is not a handoff: your message was not sent to anyone."
TEXT_ONLY = "Only text reaches the customer: files are not sent."


def desk(app: BotApp) -> SlackDesk:
    return SlackDesk(app)


def serve(app: BotApp, options: ServeOptions) -> Channel:
    """Listen to the people at the desk on the process's Slack app, and hand `botkit serve`
    what runs that app (the Slack channel, when it is served too)."""
    slack = SlackApp.of(app, purpose="desk")
    DeskListener.of(app, slack).listen()
    return slack.serving


class SlackDesk:
    """Shows handoffs in Slack (the `botkit.handoff.Desk` of bots with `desk = "slack"`),
    and passes on the replies other workers kept and did not (`resume`)."""

    inbox = INBOX

    def __init__(self, app: BotApp) -> None:
        self._app = app
        self._channels = desk_channels(app)

    @property
    def bots(self) -> list[str]:
        """The bots at this desk."""
        return sorted(self._channels)

    async def resume(self, item: InboxItem) -> None:
        await DeskListener.of(self._app, self._slack).pass_on(item)

    @property
    def _slack(self) -> SlackApp:
        # Made on first use, so a bot with a Slack desk still chats in a terminal without
        # Slack's credentials (a handoff there is logged as failed, and times out).
        return SlackApp.of(self._app, purpose="desk")

    async def requested(self, handoff: Handoff, transcript: Sequence[Turn]) -> str | None:
        channel = self._channels[handoff.bot]
        top = header_blocks(handoff, transcript)
        try:
            slack = self._slack
        except ConfigError as err:  # say what is missing, without a traceback
            logger.error("the Slack desk cannot show handoff %s: %s", handoff.id, err)
            return None
        response = await slack.client.chat_postMessage(
            channel=channel,
            text=summary(handoff),
            blocks=[*top, *state_blocks(handoff)],
            unfurl_links=False,
            unfurl_media=False,
        )
        ref = f"{channel}:{response['ts']}"
        # Kept here too: a person may click Take before the handoff records its desk_ref.
        store = self._app.store
        await store.put_record(_record(handoff.id), {"blocks": top, "ref": ref}, ttl=RECORD_SECONDS)
        await store.put_record(_thread(ref), {"handoff": handoff.id}, ttl=RECORD_SECONDS)
        return ref

    async def customer_message(self, handoff: Handoff, text: str) -> None:
        await self._in_thread(handoff, f"*{escape(customer(handoff))}:* {escape(text)}")

    async def changed(self, handoff: Handoff) -> None:
        record = await self._app.store.get_record(_record(handoff.id)) or {}
        ref = handoff.desk_ref or record.get("ref")
        if ref is None:
            return  # never shown at the desk
        channel, ts = ref.split(":", 1)
        top = record.get("blocks") or header_blocks(handoff, ())
        await self._slack.client.chat_update(
            channel=channel, ts=ts, text=summary(handoff), blocks=[*top, *state_blocks(handoff)]
        )
        await self._in_thread(handoff, status(handoff), ref)

    async def delivery_failed(self, handoff: Handoff, reason: str) -> None:
        who = escape(customer(handoff))
        await self._in_thread(handoff, f":warning: This did not reach {who}: {escape(reason)}")

    async def _in_thread(self, handoff: Handoff, mrkdwn: str, ref: str | None = None) -> None:
        ref = ref or handoff.desk_ref
        if ref is None:  # the desk message was never posted
            logger.warning("handoff %s has no Slack thread to post in", handoff.id)
            return
        channel, ts = ref.split(":", 1)
        await self._slack.client.chat_postMessage(
            channel=channel, thread_ts=ts, text=mrkdwn, unfurl_links=False, unfurl_media=False
        )

    async def aclose(self) -> None:
        slack = self._app.shared.get(SHARED_KEY)
        if isinstance(slack, SlackApp):
            await slack.aclose()


class DeskListener:
    """What people do at the Slack desk: the buttons, and replies in desk threads."""

    def __init__(self, app: BotApp, slack: SlackApp) -> None:
        self._handoffs = app.handoffs
        self._store = app.store
        self._slack = slack
        self._channels = set(desk_channels(app).values())
        self._names: dict[str, str] = {}

    @classmethod
    def of(cls, app: BotApp, slack: SlackApp) -> DeskListener:
        """The process's one listener (with its cache of people's names)."""
        listener = app.shared.get(LISTENER_KEY)
        if not isinstance(listener, cls):
            listener = app.shared[LISTENER_KEY] = cls(app, slack)
        return listener

    def listen(self) -> None:
        self._slack.on_event(self._on_event, first=True)
        self._slack.bolt.action(TAKE)(self._on_action)
        self._slack.bolt.action(RESOLVE)(self._on_action)

    # --- the buttons: acknowledged at once, carried out after ---

    async def _on_action(self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        try:
            # SlackApp checked the request; a bolt app of one's own may not have.
            check_interaction(body)
        except PayloadError as err:
            logger.warning("ignored a Slack desk action that botkit cannot read: %s", err)
            return
        self._slack.spawn(self._act(body, action))

    async def _act(self, body: Mapping[str, Any], action: Mapping[str, Any]) -> None:
        user, channel, message = (_object(body, key) for key in ("user", "channel", "message"))
        user_id, channel_id = user.get("id"), channel.get("id")
        handoff_id = action.get("value")
        if not (isinstance(user_id, str) and isinstance(channel_id, str)):
            logger.warning("a Slack desk action without a user or a channel: ignored")
            return
        thread = message.get("thread_ts") or message.get("ts")
        try:
            if not isinstance(handoff_id, str):
                await self._note(channel_id, user_id, thread, NOTES["unknown"])
                return
            name = await self._name(user_id, user.get("name"))
            if action.get("action_id") == TAKE:
                result = await self._handoffs.take(handoff_id, agent_id=user_id, agent_name=name)
            else:
                result = await self._handoffs.resolve(handoff_id, agent_name=name)
            if result.outcome != "done":
                agent = result.handoff.agent_name if result.handoff else None
                note = NOTES[result.outcome].format(agent=agent or "Someone")
                await self._note(channel_id, user_id, thread, note)
        except Exception:
            logger.exception("the Slack desk could not carry out %s", action.get("action_id"))

    # --- replies in desk threads: the desk's, before the channel sees them ---

    async def _on_event(self, event: dict[str, Any], body: dict[str, Any]) -> bool:
        channel, thread_ts = event.get("channel"), event.get("thread_ts")
        # Some events give their channel as an object (channel_created, im_created…).
        if not (isinstance(channel, str) and channel in self._channels):
            return False
        if not isinstance(thread_ts, str):
            return False
        if thread_ts == event.get("ts"):
            return False  # not a reply
        me = self._slack.me(body)
        if is_ignored(event, me):
            return False  # bots (this one's posts in the thread too), edits, joins…
        handoff = await self._handoff_at(f"{channel}:{thread_ts}")
        # An employees' thread is not the desk's business (the channel may answer a mention
        # there); a reply under one of the bot's own posts that is no handoff is a mistake.
        if handoff is None and (
            event.get("parent_user_id") != me.user_id or is_addressed(event, me)
        ):
            return False
        seen = f"slack:desk:{channel}:{event['ts']}"
        text = plain_text(str(event.get("text") or ""), me)
        if handoff is None:  # a note for the person is all there is to do
            if await self._store.claim(seen, ttl=SEEN_SECONDS):
                self._slack.spawn(self._reply(None, event, text))
            return True
        item = await self._store.inbox_add(
            channel=inbox_channel(INBOX, handoff.bot),
            conversation=handoff.id,
            payload={
                "kind": "desk_reply",
                "handoff": handoff.id,
                "event": {key: event.get(key) for key in ("channel", "thread_ts", "ts", "user")},
                "text": text,
            },
            dedupe=seen,
        )
        if item is not None:  # else a retry, or the app_mention twin of one already kept
            self._slack.spawn(settle(self._store, item, self.pass_on(item)))
        return True

    async def pass_on(self, item: InboxItem) -> None:
        """Carry out a reply kept in the inbox (here, or by a worker that died)."""
        handoff = await self._store.handoff_get(str(item.payload["handoff"]))
        await self._reply(handoff, item.payload["event"], str(item.payload["text"]))

    async def _reply(self, handoff: Handoff | None, event: Mapping[str, Any], text: str) -> None:
        channel, thread, user = event["channel"], event["thread_ts"], event["user"]
        try:
            if handoff is None:
                await self._note(channel, user, thread, NO_HANDOFF)
                return
            if not text:
                await self._note(channel, user, thread, TEXT_ONLY)
                return
            name = await self._name(user, None)
            if text.lower() == "resolve":
                result = await self._handoffs.resolve(handoff.id, agent_name=name)
            else:
                result = await self._handoffs.say(
                    handoff.id, agent_id=user, agent_name=name, text=text
                )
            if result.outcome != "done":
                await self._note(channel, user, thread, NOTES[result.outcome].format(agent=name))
        except Exception:
            logger.exception("the Slack desk could not pass on a reply in %s", channel)

    async def _handoff_at(self, ref: str) -> Handoff | None:
        """The handoff a desk thread shows (also in the moment before it knows its thread)."""
        if (handoff := await self._store.handoff_by_desk(ref)) is not None:
            return handoff
        record = await self._store.get_record(_thread(ref))
        return await self._store.handoff_get(record["handoff"]) if record else None

    # --- Slack ---

    async def _name(self, user_id: str, fallback: str | None) -> str:
        """A person's name as Slack shows it (users.info, asked once per person)."""
        if (known := self._names.get(user_id)) is not None:
            return known
        try:
            response = await self._slack.client.users_info(user=user_id)
        except Exception as err:  # the name is a nicety: the id will do
            logger.warning("could not look up Slack user %s: %s", user_id, err)
            return fallback or user_id
        person = response.get("user") or {}
        profile = person.get("profile") or {}
        name = str(
            profile.get("display_name")
            or profile.get("real_name")
            or person.get("real_name")
            or person.get("name")
            or fallback
            or user_id
        )
        if len(self._names) >= NAMES_KEPT:
            self._names.pop(next(iter(self._names)))
        self._names[user_id] = name
        return name

    async def _note(self, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        """Tell one person something only they see (chat.postEphemeral)."""
        try:
            await self._slack.client.chat_postEphemeral(
                channel=channel, user=user, text=text, thread_ts=thread_ts
            )
        except (SlackApiError, OSError, TimeoutError) as err:
            logger.warning("could not tell %s at the Slack desk: %s", user, err)


# --- the desk message ------------------------------------------------------------------


def desk_channels(app: BotApp) -> dict[str, str]:
    """The desk channel of each bot whose desk is Slack."""
    return {
        bot.name: bot.settings.handoff.slack_channel
        for bot in app.bots
        if bot.settings.handoff is not None
        and bot.settings.handoff.desk == "slack"
        and bot.settings.handoff.slack_channel is not None
    }


def customer(handoff: Handoff) -> str:
    return handoff.user_name or handoff.user_id


def summary(handoff: Handoff) -> str:
    """The message's plain text (notifications, and clients that show no blocks)."""
    where = WHERE.get(handoff.channel, handoff.channel)
    return f"{customer(handoff)} on {where} wants a person. {status(handoff)}"


def header_blocks(handoff: Handoff, transcript: Sequence[Turn]) -> list[dict[str, Any]]:
    """Who the customer is, where, why, and the last turns of the conversation."""
    who = escape(customer(handoff))
    where = WHERE.get(handoff.channel, handoff.channel)
    why = escape(handoff.reason or WHY.get(handoff.trigger, handoff.trigger))
    intro = f":raising_hand: *{who}* on {where} wants a person (bot {handoff.bot}).\n*Why:* {why}"
    blocks: list[dict[str, Any]] = [_section(intro)]
    lines: list[str] = []
    for turn in reversed(transcript):
        speaker = {"user": who, "assistant": "Bot"}.get(turn.role) or escape(turn.name or "Agent")
        text = " ".join(turn.content.split())
        if len(text) > TURN_CHARS:
            text = text[: TURN_CHARS - 1] + "…"
        line = f"*{speaker}:* {escape(text)}"
        if sum(len(known) + 1 for known in lines) + len(line) > SECTION_CHARS:
            break
        lines.insert(0, line)
    if lines:
        blocks.append(_section("*Last messages*\n" + "\n".join(lines)))
    return blocks


def state_blocks(handoff: Handoff) -> list[dict[str, Any]]:
    """Where the handoff stands, and the buttons that still make sense."""
    blocks: list[dict[str, Any]] = [
        {"type": "context", "elements": [{"type": "mrkdwn", "text": status(handoff)}]}
    ]
    buttons = []
    if handoff.state == "waiting":
        buttons.append(_button("Take", TAKE, handoff.id, style="primary"))
    if handoff.open:
        buttons.append(_button("Resolve", RESOLVE, handoff.id))
    if buttons:
        blocks.append({"type": "actions", "block_id": "botkit_handoff", "elements": buttons})
    return blocks


def status(handoff: Handoff) -> str:
    agent = escape(handoff.agent_name or "someone")
    if handoff.state == "waiting":
        return "Waiting for a person: *Take* it, or just reply in the thread."
    if handoff.state == "human":
        return f"Taken by *{agent}*."
    if handoff.outcome == "timeout":
        return "Nobody took it in time: the bot answers again."
    if handoff.outcome == "cancelled":
        return "The customer started over: the bot answers again."
    return f"Resolved by *{agent}*: the bot answers again."


def _section(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}}


def _button(label: str, action_id: str, value: str, *, style: str | None = None) -> dict[str, Any]:
    button = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _object(body: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = body.get(key)
    return value if isinstance(value, dict) else {}


def _record(handoff_id: str) -> str:
    return f"slack:desk:handoff:{handoff_id}"


def _thread(ref: str) -> str:
    return f"slack:desk:thread:{ref}"
