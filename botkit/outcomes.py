"""What became of every message, recorded for the report and the transcripts.

`OutcomeRecorder` is a pipeline listener: it turns each reply into an `Outcome`
and writes them to the store in batches, once a second, as the token meter does,
so recording costs the message path no trip to the store.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence

from botkit.batches import Batches
from botkit.messages import IncomingMessage, Outcome, OutcomeKind, Reply
from botkit.settings import Price
from botkit.stores.base import OutcomeLog

QUESTION_CHARS = 1000
"""How much of a message an outcome keeps (the conversation keeps all of it)."""


def outcome_kind(reply: Reply) -> OutcomeKind:
    """What became of the message a reply answers."""
    if reply.kind == "answer":
        return "faq" if reply.model == "faq" else "model"
    return reply.kind


def price(
    model: str | None, prompt: int, completion: int, prices: Mapping[str, Price]
) -> float | None:
    """What tokens of a model cost, or None when the model has no price."""
    found = prices.get(model) if model else None
    if found is None:
        return None
    return (prompt * found.input + completion * found.output) / 1e6


class OutcomeRecorder(Batches[tuple[str, str], Outcome]):
    """Records the outcome of each reply of the pipelines it listens to (`observe`)."""

    lost = "could not record the outcomes of messages; they are lost"

    def __init__(
        self,
        log: OutcomeLog,
        *,
        prices: Mapping[str, Price] | None = None,
        flush_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(flush_seconds=flush_seconds)
        self._log = log
        self._clock = clock
        self._prices = dict(prices or {})

    def observe(self, message: IncomingMessage, reply: Reply, seconds: float) -> None:
        """A pipeline reply listener."""
        usage = reply.usage
        outcome = Outcome(
            bot=message.bot,
            channel=message.channel,
            conversation=message.conversation_key,
            user=message.user_id,
            # Only /start and /help reach here without one: no turn or vote names them.
            message_id=message.message_id or f"m_{secrets.token_urlsafe(9)}",
            at=self._clock(),
            kind=outcome_kind(reply),
            question=message.text[:QUESTION_CHARS],
            faq=reply.faq[0] if reply.faq else None,
            faq_score=reply.faq_score,
            seconds=seconds,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            model=reply.model,
            cost=price(reply.model, usage.prompt_tokens, usage.completion_tokens, self._prices),
            error=reply.error,
        )
        self._keep((outcome.conversation, outcome.message_id), outcome)

    async def _write(self, entries: Sequence[Outcome]) -> None:
        await self._log.add_outcomes(entries)
