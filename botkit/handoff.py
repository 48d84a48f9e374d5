"""Handing conversations to people, and back.

    bot ──(/human, a handoff FAQ snippet, N fallbacks, the model's tool, the API)──▶ waiting
    waiting ──(a person takes it, or just replies)──▶ human
    waiting ──(nobody within the timeout)──▶ bot, with handoff_timeout.md.j2
    human, waiting ──(resolved at the desk, or the customer's /reset)──▶ bot

The state lives in the store (every worker sees it; each change is a compare-and-set,
so two people clicking Take at once make one owner). People work at a desk (Slack, a
webhook helpdesk); what they write reaches the customer as a turn of the
conversation, announced on the store's feed and put in the inbox for a worker
serving the customer's channel to deliver, so it arrives once, from any worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from botkit.home import BotDefinition
from botkit.messages import Handoff, IncomingMessage, Turn
from botkit.prompting.composer import AgentInfo, PromptComposer
from botkit.prompting.tokens import count_message_tokens
from botkit.settings import HandoffSettings
from botkit.stores.base import Store

logger = logging.getLogger(__name__)

TRANSCRIPT_TURNS = 10
"""How many turns of the conversation the desk is shown when it is handed over."""

Outcome = Literal["done", "unknown", "closed", "taken"]
"""What became of a person's action: carried out; no such handoff; the handoff is over;
someone else has it (for Take)."""

HandoffListener = Callable[[str, Handoff], None]
"""Called with "requested", "taken", "resolved" or "timeout" and the handoff (metrics)."""

RELOADABLE = frozenset({"timeout", "after_fallbacks"})
"""The `[handoff]` keys a running process takes from a reload; the others make its desk."""


def desk_settings(handoff: HandoffSettings | None) -> dict[str, Any] | None:
    """The part of a `[handoff]` table a desk is made from (None: the bot never hands off)."""
    return None if handoff is None else handoff.model_dump(exclude=set(RELOADABLE))


class Desk(Protocol):
    """Where people see handed-off conversations and answer them (see `botkit.desks`)."""

    async def requested(self, handoff: Handoff, transcript: Sequence[Turn]) -> str | None:
        """Show a new handoff; the reference it is shown under (e.g. a Slack thread)."""
        ...

    async def customer_message(self, handoff: Handoff, text: str) -> None:
        """Show what the customer wrote during the handoff."""
        ...

    async def changed(self, handoff: Handoff) -> None:
        """Show that the handoff was taken, resolved, timed out or cancelled."""
        ...

    async def delivery_failed(self, handoff: Handoff, reason: str) -> None:
        """Tell the people that a message could not reach the customer."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """The outcome of a person's action, and the handoff as it is now (None if unknown)."""

    outcome: Outcome
    handoff: Handoff | None = None


class Handoffs:
    """The handoffs of every bot of a process, each with its bot's desk."""

    def __init__(
        self,
        *,
        store: Store,
        bots: Sequence[BotDefinition],
        desks: Mapping[str, Desk],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._bots = {bot.name: bot for bot in bots if bot.settings.handoff is not None}
        self._composers = {name: PromptComposer(bot) for name, bot in self._bots.items()}
        self._desks = desks
        self._clock = clock
        self.listeners: list[HandoffListener] = []

    def serves(self, bot: str) -> bool:
        return bot in self._bots

    @property
    def desks(self) -> list[Desk]:
        """Every desk in use, once."""
        return list({id(desk): desk for desk in self._desks.values()}.values())

    def replace_bot(self, bot: BotDefinition) -> None:
        """A reloaded bot: its templates and its `[handoff]` keys named in `RELOADABLE`.
        Desks are made at start, so the rest of the table must stay as it was."""
        old = self._bots.get(bot.name)
        if desk_settings(old.settings.handoff if old else None) != desk_settings(
            bot.settings.handoff
        ):
            raise ValueError(f"bot {bot.name}: a new desk needs a restart")
        if old is not None:
            self._bots[bot.name] = bot
            self._composers[bot.name] = PromptComposer(bot)

    # --- from the pipeline (the conversation's lock is held) ---------------------------

    async def start(
        self,
        message: IncomingMessage,
        *,
        trigger: str,
        reason: str,
        address: dict[str, Any],
        history: Sequence[Turn],
    ) -> Handoff:
        """Open a handoff for the message's conversation (or return the one already open)
        and show it at the desk with the last turns. A desk that fails is logged: the
        customer is still told, and the handoff times out if nobody sees it."""
        bot = self._bots[message.bot]
        assert bot.settings.handoff is not None
        now = self._clock()
        new = Handoff(
            id=f"h_{secrets.token_urlsafe(12)}",
            bot=bot.name,
            conversation=message.conversation_key,
            channel=message.channel,
            user_id=message.user_id,
            user_name=message.user_name,
            address=address,
            trigger=trigger,
            reason=reason,
            desk=bot.settings.handoff.desk,
            created=now,
            updated=now,
        )
        handoff = await self.store.handoff_open(new)
        if handoff.id == new.id:
            self._emit("requested", handoff)
        if handoff.desk_ref is None:
            transcript = list(history[-TRANSCRIPT_TURNS:])
            if message.text:  # not stored yet when the history was read
                asked = Turn("user", message.text, now, 0, id=message.message_id)
                transcript = [*history[-(TRANSCRIPT_TURNS - 1) :], asked]
            try:
                desk_ref = await self._desk(handoff).requested(handoff, transcript)
            except Exception:
                logger.exception(
                    "bot %s: the %s desk could not show handoff %s",
                    handoff.bot,
                    handoff.desk,
                    handoff.id,
                )
                desk_ref = None
            if desk_ref is not None:
                handoff = await self._change(handoff.id, desk_ref=desk_ref) or handoff
        return handoff

    async def relay(self, handoff: Handoff, message: IncomingMessage) -> None:
        """Show the desk what the customer wrote (their message is already stored)."""
        try:
            await self._desk(handoff).customer_message(handoff, message.text)
        except Exception:
            logger.exception(
                "bot %s: could not relay a message to the %s desk (handoff %s)",
                handoff.bot,
                handoff.desk,
                handoff.id,
            )

    async def cancel(self, handoff: Handoff) -> None:
        """The customer started over (/reset): the handoff ends without a notice to them."""
        changed = await self._change(handoff.id, state="resolved", outcome="cancelled")
        if changed is not None:
            self._emit("resolved", changed)
            await self._show(changed)

    # --- from people at a desk ---------------------------------------------------------

    async def take(self, handoff_id: str, *, agent_id: str, agent_name: str) -> Result:
        """A person takes the conversation; the customer is told they joined."""
        while True:
            handoff = await self.store.handoff_get(handoff_id)
            if handoff is None:
                return Result("unknown")
            if not handoff.open:
                return Result("closed", handoff)
            if handoff.state == "human":
                mine = handoff.agent_id == agent_id
                return Result("done" if mine else "taken", handoff)
            taken = await self.store.handoff_update(
                dataclasses.replace(
                    handoff,
                    state="human",
                    agent_id=agent_id,
                    agent_name=agent_name,
                    updated=self._clock(),
                )
            )
            if taken is not None:
                break
        self._emit("taken", taken)
        await self._notify(taken, "handoff_joined", "joined")
        await self._show(taken)
        return Result("done", taken)

    async def say(self, handoff_id: str, *, agent_id: str, agent_name: str, text: str) -> Result:
        """A person's message to the customer; replying without taking takes it."""
        handoff = await self.store.handoff_get(handoff_id)
        if handoff is None:
            return Result("unknown")
        if not handoff.open:
            return Result("closed", handoff)
        if handoff.state == "waiting":
            taken = await self.take(handoff_id, agent_id=agent_id, agent_name=agent_name)
            if taken.outcome == "closed" or taken.handoff is None:
                return taken
            handoff = taken.handoff
        turn = Turn(
            "agent",
            text,
            self._clock(),
            count_message_tokens(text),
            id=f"a_{secrets.token_urlsafe(9)}",
            name=agent_name,
        )
        await self._tell(handoff, turn)
        return Result("done", handoff)

    async def resolve(self, handoff_id: str, *, agent_name: str | None = None) -> Result:
        """The people are done: the customer is told and the bot answers again."""
        while True:
            handoff = await self.store.handoff_get(handoff_id)
            if handoff is None:
                return Result("unknown")
            if not handoff.open:
                return Result("closed", handoff)
            resolved = await self.store.handoff_update(
                dataclasses.replace(
                    handoff,
                    state="resolved",
                    outcome="resolved",
                    agent_name=handoff.agent_name or agent_name,
                    updated=self._clock(),
                )
            )
            if resolved is not None:
                break
        self._emit("resolved", resolved)
        await self._notify(resolved, "handoff_resolved", "resolved")
        await self._show(resolved)
        return Result("done", resolved)

    async def delivery_failed(self, handoff_id: str, reason: str) -> None:
        handoff = await self.store.handoff_get(handoff_id)
        if handoff is not None:
            logger.warning(
                "handoff %s: a message could not reach the customer: %s", handoff_id, reason
            )
            try:
                await self._desk(handoff).delivery_failed(handoff, reason)
            except Exception:
                logger.exception(
                    "bot %s: could not tell the desk about a failed delivery", handoff.bot
                )

    # --- timeouts ----------------------------------------------------------------------

    async def expire(self) -> int:
        """Give back to the bot every waiting handoff nobody took in time; how many."""
        expired = 0
        now = self._clock()
        for handoff in await self.store.handoffs_open():
            bot = self._bots.get(handoff.bot)
            if bot is None or bot.settings.handoff is None or handoff.state != "waiting":
                continue
            if now - handoff.created < bot.settings.handoff.timeout:
                continue
            timed_out = await self.store.handoff_update(
                dataclasses.replace(handoff, state="resolved", outcome="timeout", updated=now)
            )
            if timed_out is None:  # taken (or timed out by another worker) meanwhile
                continue
            expired += 1
            self._emit("timeout", timed_out)
            await self._notify(timed_out, "handoff_timeout", "timeout")
            await self._show(timed_out)
        return expired

    async def run(self) -> None:
        """Look for handoffs past their timeout, until cancelled (every worker does; the
        compare-and-set makes each time out once)."""
        while timeouts := [
            b.settings.handoff.timeout for b in self._bots.values() if b.settings.handoff
        ]:
            # Asked again each time: a reload may have changed a timeout.
            await asyncio.sleep(min(max(min(timeouts) / 10, 0.5), 30.0))
            try:
                await self.expire()
            except Exception:
                logger.exception("could not time out waiting handoffs")

    # --- telling the customer ----------------------------------------------------------

    async def _notify(self, handoff: Handoff, template: str, kind: str) -> None:
        composer = self._composers.get(handoff.bot)
        if composer is None:
            return
        message = _as_message(handoff)
        agent = AgentInfo(handoff.agent_name)
        context = composer.context(message) | {"agent": agent}
        text = composer.bot.templates.render_or_default(template, context)
        turn = Turn("assistant", text, self._clock(), count_message_tokens(text), kind=kind)
        await self._tell(handoff, turn)

    async def _tell(self, handoff: Handoff, turn: Turn) -> None:
        """Store the turn in the conversation, announce it (live web views), and leave it in
        the inbox for a worker of the customer's channel to deliver."""
        async with self.store.lock(handoff.conversation) as lease:
            await self.store.append(handoff.conversation, [turn], lease=lease)
        await self.store.publish(f"conversation:{handoff.conversation}")
        await self.store.inbox_add(
            channel=f"{handoff.channel}/{handoff.bot}",
            conversation=handoff.conversation,
            payload={
                "kind": "deliver",
                "handoff": handoff.id,
                "address": handoff.address,
                "text": turn.content,
                "agent": turn.name,
                "turn": turn.kind or turn.role,
            },
            owned=False,
        )

    async def _show(self, handoff: Handoff) -> None:
        try:
            await self._desk(handoff).changed(handoff)
        except Exception:
            logger.exception(
                "bot %s: the %s desk could not show a change to handoff %s",
                handoff.bot,
                handoff.desk,
                handoff.id,
            )

    async def _change(self, handoff_id: str, **fields: Any) -> Handoff | None:
        """Apply `fields` by compare-and-set until it holds; None if the handoff is over."""
        while True:
            handoff = await self.store.handoff_get(handoff_id)
            if handoff is None or not handoff.open:
                return None
            changed = await self.store.handoff_update(
                dataclasses.replace(handoff, updated=self._clock(), **fields)
            )
            if changed is not None:
                return changed

    def _desk(self, handoff: Handoff) -> Desk:
        return self._desks[handoff.bot]

    def _emit(self, event: str, handoff: Handoff) -> None:
        for listener in self.listeners:
            listener(event, handoff)


def _as_message(handoff: Handoff) -> IncomingMessage:
    """The customer, as the templates' `user` and `channel` know them."""
    return IncomingMessage(
        channel=handoff.channel,
        bot=handoff.bot,
        conversation_id=handoff.conversation.split("/", 2)[-1],
        user_id=handoff.user_id,
        user_name=handoff.user_name,
        text="",
        timestamp=datetime.fromtimestamp(handoff.created, UTC),
    )
