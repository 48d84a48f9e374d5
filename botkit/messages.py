"""The vocabulary every part of botkit speaks.

Adapters turn platform updates into an `IncomingMessage` at their edge and turn a
`Reply` back into platform calls; stores keep `Turn`s. Nothing platform-specific
travels further inward than these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

Role = Literal["user", "assistant"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingMessage:
    """One user message, normalized from whichever channel it arrived on."""

    channel: str
    bot: str
    conversation_id: str
    user_id: str
    text: str
    user_name: str | None = None
    user_language: str | None = None
    message_id: str | None = None
    timestamp: datetime = field(default_factory=_utc_now)

    @property
    def conversation_key(self) -> str:
        """The store key: conversations are separate per bot and per channel."""
        return conversation_key(self.bot, self.channel, self.conversation_id)


def conversation_key(bot: str, channel: str, conversation_id: str) -> str:
    return f"{bot}/{channel}/{conversation_id}"


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one completion cost, as the API reported them (zero when unknown)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


ReplyKind = Literal["answer", "fallback", "command", "limit", "handoff", "relayed"]
"""What a reply is: the model's (or the FAQ's) answer, the fallback text, a command's
answer, the daily-limit notice, the notice that a person will take over (`handoff`),
or nothing at all because the message went to the person handling the conversation
(`relayed`, with empty text)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """What the bot says back; adapters render it for their platform."""

    text: str
    conversation_id: str
    kind: ReplyKind = "answer"
    in_reply_to: str | None = None
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    error: str | None = None
    """The kind of failure (e.g. "RateLimitError") when the LLM could not answer."""

    @property
    def truncated(self) -> bool:
        """True when the model stopped at its token limit, mid-answer."""
        return self.finish_reason == "length"


@dataclass(frozen=True, slots=True)
class Turn:
    """One stored message of a conversation.

    `tokens` is counted once, when the turn is stored, so trimming history to
    the context budget is a sum of integers, not a re-tokenization.
    """

    role: Role
    content: str
    at: float
    tokens: int
