"""The vocabulary every part of botkit speaks.

Adapters turn platform updates into an `IncomingMessage` at their edge and turn a
`Reply` back into platform calls; stores keep `Turn`s. Nothing platform-specific
travels further inward than these types.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Role = Literal["user", "assistant", "agent"]
"""Who wrote a turn: the customer, the bot, or a person who took the conversation over."""


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

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["timestamp"] = self.timestamp.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IncomingMessage:
        return cls(**{**data, "timestamp": datetime.fromisoformat(data["timestamp"])})


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
    faq: tuple[str, ...] = ()
    """The FAQ snippets (their `source`) handed to the prompt, best first."""
    handoff: str | None = None
    """The id of the handoff this message started or was relayed to."""
    faq_score: float | None = None
    """The confidence (0–1) of the best FAQ match for the message, when one was searched."""

    @property
    def truncated(self) -> bool:
        """True when the model stopped at its token limit, mid-answer."""
        return self.finish_reason == "length"


@dataclass(frozen=True, slots=True)
class Turn:
    """One stored message of a conversation.

    `tokens` is counted once, when the turn is stored, so trimming history to
    the context budget is a sum of integers, not a re-tokenization. `id` is the
    message's id (a user's message is stored once however often it is handled);
    an answer names the message it answers in `reply_to` and what it is in
    `kind`; an agent's turn carries the person's `name`.
    """

    role: Role
    content: str
    at: float
    tokens: int
    id: str | None = None
    reply_to: str | None = None
    kind: str | None = None
    name: str | None = None


OutcomeKind = Literal["model", "faq", "fallback", "limit", "command", "handoff", "relayed"]
"""What became of a customer's message: answered by the model, answered with a FAQ
snippet (no LLM, or the LLM failed), the fallback text (nothing matched), the daily
limit notice, a command's answer, handed to people, or relayed to the person who has it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What became of one customer message, for the report and the transcripts.

    One per message (`conversation`, `message_id`); `question` is its text as stored
    (redacted, cut to size), so the report can group what the bot could not answer.
    """

    bot: str
    channel: str
    conversation: str
    """The conversation's store key."""
    user: str
    message_id: str
    at: float
    kind: OutcomeKind
    question: str = ""
    faq: str | None = None
    """The best FAQ snippet (its `source`) handed to the prompt, if any."""
    faq_score: float | None = None
    seconds: float = 0.0
    """How long the reply took, from the message's arrival."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None
    cost: float | None = None
    """What the answer's tokens cost (`BOTKIT_LLM_PRICES`), None when the model has no price."""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        return cls(**data)


@dataclass(frozen=True, slots=True, kw_only=True)
class Feedback:
    """A customer's 👍 (`score` 1) or 👎 (-1) on the answer to their message `message_id`;
    one per answer: a second vote replaces the first."""

    bot: str
    channel: str
    conversation: str
    message_id: str
    user: str
    score: int
    comment: str | None = None
    at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Feedback:
        return cls(**data)


HandoffState = Literal["waiting", "human", "resolved"]
"""`waiting`: handed off, nobody has taken it; `human`: a person has; `resolved`: over.
A conversation with no open (waiting or human) handoff is handled by the bot."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Handoff:
    """A conversation handed to people: who the customer is and how to reach them, and
    where and by whom it is being handled. Changed by compare-and-set on `version`."""

    id: str
    bot: str
    conversation: str
    """The conversation's store key."""
    channel: str
    user_id: str
    user_name: str | None = None
    address: dict[str, Any] = field(default_factory=dict)
    """What the customer's channel needs to deliver a message to them (chat id, thread…)."""
    trigger: str
    """What started it: "command", "faq", "fallbacks", "tool" or "api"."""
    reason: str = ""
    desk: str
    desk_ref: str | None = None
    """Where the desk shows it (the Slack channel and thread), once posted."""
    state: HandoffState = "waiting"
    agent_id: str | None = None
    agent_name: str | None = None
    created: float
    updated: float
    outcome: str | None = None
    """How it ended: "resolved" or "timeout"."""
    version: int = 0

    @property
    def open(self) -> bool:
        return self.state != "resolved"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Handoff:
        return cls(**data)
