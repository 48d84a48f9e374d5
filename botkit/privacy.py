"""People's data: forgetting one person everywhere botkit keeps it, and deleting the
conversations a bot keeps no longer than its `retention`.

A person is found through the outcome log, which names who wrote each message. A
conversation only they wrote in goes whole (its turns, the people's replies, the
outcomes, votes and handoffs); in one they share with others (a Slack channel
thread) only their messages, the answers to them, their votes and the handoffs
they started go. Their token rows lose their name and keep their tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass

from botkit.home import BotDefinition
from botkit.outcomes import OutcomeRecorder
from botkit.stores.base import Store

logger = logging.getLogger(__name__)

PURGE_EVERY = 3600.0
"""Seconds between two looks for expired conversations while serving."""
LATE_WRITES = 2.5
"""Seconds within which every running worker has written the outcomes and token counts it
holds (it writes them each second, `botkit.outcomes`, `botkit.llm.usage`): `forget`
looks again after them."""

# Records that other parts keep about a conversation or a handoff, by their key's format
# (tests/test_privacy.py holds these to the modules that write them).
WEB_SESSION_RECORD = "web:session:{id}"
"""botkit.adapters.web.sessions: a web session (its user and metadata); `id` is the
conversation id of the session's conversation."""
DESK_RECORDS = ("slack:desk:handoff:{id}",)
"""botkit.desks.slack: what a handoff's desk message shows (its transcript)."""


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What `forget` deleted."""

    conversations: int = 0
    """Conversations deleted whole."""
    shared: int = 0
    """Conversations with others, from which only the person's part was deleted."""
    messages: int = 0
    votes: int = 0
    handoffs: int = 0
    usage_rows: int = 0

    @property
    def nothing(self) -> bool:
        return not (self.conversations or self.shared or self.votes or self.usage_rows)

    def __add__(self, other: Forgotten) -> Forgotten:
        return Forgotten(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


async def forget(
    store: Store,
    user: str,
    *,
    bot: str | None = None,
    recorder: OutcomeRecorder | None = None,
    again_after: float = LATE_WRITES,
) -> Forgotten:
    """Delete everything about `user` (for one bot, or every bot) from the store.

    `recorder`: the outcomes this process has not written yet are written first. Other
    workers write theirs within a second, and a conversation is found through them: after
    `again_after` seconds (0: never) it looks again, and deletes what they wrote.
    """
    if recorder is not None:
        await recorder.flush()
    done = await _forget_once(store, user, bot)
    if again_after > 0:
        await asyncio.sleep(again_after)
        done += await _forget_once(store, user, bot)
    return done


async def _forget_once(store: Store, user: str, bot: str | None) -> Forgotten:
    written = await store.outcomes(user=user, bot=bot)
    votes = await store.feedback(user=user, bot=bot)
    theirs: dict[str, list[str]] = {}
    for outcome in written:
        theirs.setdefault(outcome.conversation, []).append(outcome.message_id)
    for vote in votes:
        theirs.setdefault(vote.conversation, [])
    whole = shared = handoffs = 0
    for conversation, messages in theirs.items():
        writers = {o.user for o in await store.outcomes(conversation=conversation)}
        if writers <= {user}:
            erased = await store.erase(conversation)
            await _delete_records(store, conversation, erased)
            whole += 1
        else:
            erased = await store.erase(conversation, user=user, messages=messages)
            await _delete_records(store, None, erased)
            shared += 1
        handoffs += len(erased)
    usage_rows = await store.erase_usage(user=user, bot=bot)
    return Forgotten(whole, shared, len(written), len(votes), handoffs, usage_rows)


async def purge(store: Store, bot: str, *, retention: float, now: float | None = None) -> int:
    """Delete the conversations of `bot` idle for longer than `retention` seconds; how many."""
    before = (time.time() if now is None else now) - retention
    conversations = await store.idle_conversations(bot=bot, before=before)
    for conversation in conversations:
        erased = await store.erase(conversation)
        await _delete_records(store, conversation, erased)
    return len(conversations)


async def _delete_records(store: Store, conversation: str | None, handoffs: Sequence[str]) -> None:
    keys = [key.format(id=handoff_id) for handoff_id in handoffs for key in DESK_RECORDS]
    if conversation is not None:
        _, channel, conversation_id = (
            conversation.split("/", 2) if conversation.count("/") >= 2 else ("", "", "")
        )
        if channel == "web":
            keys.append(WEB_SESSION_RECORD.format(id=conversation_id))
    for key in keys:
        await store.delete_record(key)


class RetentionPurger:
    """While serving, every `PURGE_EVERY` seconds: each bot's conversations idle past its
    `retention` are deleted. Every worker does it; a conversation deleted twice is
    deleted once."""

    def __init__(
        self,
        store: Store,
        bots: Callable[[], Sequence[BotDefinition]],
        *,
        every: float = PURGE_EVERY,
    ) -> None:
        self._store = store
        self._bots = bots  # asked each time: a reload may change a bot's retention
        self._every = every

    async def purge_once(self) -> int:
        purged = 0
        for bot in self._bots():
            if bot.settings.retention is None:
                continue
            try:
                count = await purge(self._store, bot.name, retention=bot.settings.retention)
            except Exception:
                logger.exception("bot %s: could not delete expired conversations", bot.name)
                continue
            if count:
                logger.info(
                    "bot %s: deleted %d conversations past their retention", bot.name, count
                )
            purged += count
        return purged

    async def run(self) -> None:
        """Purge now, then every `every` seconds, until cancelled."""
        while True:
            await self.purge_once()
            await asyncio.sleep(self._every)
