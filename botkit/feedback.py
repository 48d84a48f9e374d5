"""Customers' votes on the bot's answers: 👍 or 👎 from any channel's buttons or the API,
one per answer (a second click changes it), kept in the store against the answer.

An answer is named by its conversation and the id of the message it answers. A vote
on an answer that is gone (purged, forgotten, or reset away) is refused politely;
a 👎 from a bot whose `[handoff]` has `offer_on_thumbs_down` offers a person.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from botkit.messages import Feedback, conversation_key
from botkit.pipeline import Pipeline
from botkit.stores.base import Store

COMMENT_CHARS = 2000
"""A comment longer than this is cut."""
BUTTONS: Mapping[int, str] = {1: "👍", -1: "👎"}
THANKS = "Thanks for telling us!"
GONE = "That answer is no longer here, so it cannot be rated."
OFFER = "Talk to a person"
"""The label of the button a 👎 may bring."""

VoteStatus = Literal["recorded", "gone", "off"]
"""The vote is kept; the answer no longer exists; the bot takes no votes."""


@dataclass(frozen=True, slots=True)
class VoteResult:
    status: VoteStatus
    offer_person: bool = False
    """A 👎 on a bot that offers a person for one (and could hand the conversation over)."""

    @property
    def note(self) -> str:
        """What to tell the customer who voted."""
        return THANKS if self.status == "recorded" else GONE


class Votes:
    """The votes on the answers of the bots a process serves."""

    def __init__(self, store: Store, pipelines: Mapping[str, Pipeline]) -> None:
        self._store = store
        self._pipelines = pipelines

    def takes_votes(self, bot: str) -> bool:
        """Whether answers of `bot` get feedback buttons (`feedback = false` turns them off);
        asked at each answer, so a reload applies at once."""
        pipeline = self._pipelines.get(bot)
        return pipeline is not None and pipeline.bot.settings.feedback

    async def cast(
        self,
        *,
        bot: str,
        channel: str,
        conversation_id: str,
        message_id: str,
        user: str,
        score: int,
        comment: str | None = None,
    ) -> VoteResult:
        """Keep `user`'s vote (1 or -1) on the answer to `message_id`, replacing theirs or
        anyone's before. Raises `StoreError`."""
        if score not in BUTTONS:
            raise ValueError(f"a vote is 1 or -1, not {score!r}")
        pipeline = self._pipelines.get(bot)
        if pipeline is None or not pipeline.bot.settings.feedback:
            return VoteResult("off")
        key = conversation_key(bot, channel, conversation_id)
        if not await self._answered(key, message_id):
            return VoteResult("gone")
        if comment is not None:
            comment = pipeline.redact(comment.strip())[:COMMENT_CHARS] or None
        await self._store.put_feedback(
            Feedback(
                bot=bot,
                channel=channel,
                conversation=key,
                message_id=message_id,
                user=user,
                score=score,
                comment=comment,
                at=time.time(),
            )
        )
        handoff = pipeline.bot.settings.handoff
        offer = (
            score == -1
            and pipeline.handoffs is not None
            and handoff is not None
            and handoff.offer_on_thumbs_down
            and await self._store.handoff_current(key) is None
        )
        return VoteResult("recorded", offer_person=offer)

    async def _answered(self, key: str, message_id: str) -> bool:
        """Whether the conversation still holds the bot's answer to the message."""
        _, turns = await self._store.turns_since(key, 0)
        return any(t.role == "assistant" and t.reply_to == message_id for t in turns)
