"""The JSON bodies of the web channel, as pydantic models: validation and OpenAPI in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from botkit.messages import Handoff, Reply, ReplyKind, Role


class _Request(BaseModel):
    # A misspelled field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid")


class NewSession(_Request):
    """Start a session with a bot."""

    bot: str | None = Field(default=None, description="Optional when one bot is served.")
    user: str | None = Field(default=None, min_length=1, max_length=256)
    metadata: dict[str, Any] = Field(default_factory=dict)


class NewPublicSession(_Request):
    """Start a chat-page session."""

    bot: str | None = Field(default=None, description="Default: the first bot served.")


class NewMessage(_Request):
    """A user message; with `stream` the reply arrives as Server-Sent Events."""

    message: str
    stream: bool = False


class SessionCreated(BaseModel):
    session_id: str
    bot: str
    created: datetime


class TokenUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class MessageReply(BaseModel):
    """The bot's answer; `message_id` identifies the exchange (the user message it answers)."""

    reply: str
    message_id: str
    usage: TokenUsage
    finish_reason: str
    kind: ReplyKind = Field(
        description='"relayed" (with an empty reply) when a person handles the conversation.'
    )

    @classmethod
    def of(cls, reply: Reply, message_id: str, **extra: Any) -> Self:
        usage = reply.usage
        return cls(
            reply=reply.text,
            message_id=message_id,
            usage=TokenUsage(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
            ),
            finish_reason=reply.finish_reason,
            kind=reply.kind,
            **extra,
        )


class PageReply(MessageReply):
    html: str = Field(description="The reply's Markdown as HTML (raw HTML in it is escaped).")


class SessionMessage(BaseModel):
    """One message of a session, as listed and as sent live on `…/events`."""

    role: Role = Field(description='"agent" for a message from a person who took over.')
    content: str
    time: datetime
    name: str | None = Field(default=None, description="The agent's name (role agent).")
    kind: str | None = Field(
        default=None,
        description=(
            "What an assistant message is: a reply's kind (answer, fallback, command, "
            "handoff…) or a notice: joined, resolved, timeout."
        ),
    )
    in_reply_to: str | None = Field(
        default=None, description="The `message_id` of the user message an answer answers."
    )


class PageMessage(SessionMessage):
    html: str | None = Field(description="An assistant or agent message's Markdown as safe HTML.")


LAST_EVENT_ID = (
    "Where the live events continue from this state: send it as `Last-Event-ID` (or "
    "`?after=`) to `…/events` to receive only what was stored after it."
)


class SessionState(BaseModel):
    session_id: str
    bot: str
    user: str
    created: datetime
    metadata: dict[str, Any]
    messages: list[SessionMessage]
    last_event_id: str = Field(description=LAST_EVENT_ID)


class PageSession(BaseModel):
    """A chat-page session: the bot's welcome and the messages so far, ready to show."""

    session_id: str
    bot: str
    title: str
    welcome_html: str
    messages: list[PageMessage]
    last_event_id: str = Field(description=LAST_EVENT_ID)


class ModelInfo(BaseModel):
    bot: str
    model: str = Field(description='The model the bot asks first; "faq" when it answers offline.')
    description: str


class ModelList(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: Literal["ok"]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class StreamDelta(BaseModel):
    """One `delta` event of a streamed reply; the deltas joined are the whole reply."""

    delta: str


# ---- handing over to people --------------------------------------------------------------


class NewHandoff(_Request):
    """Hand a session to people (the bot's `[handoff]` desk)."""

    reason: str = Field(default="", max_length=1000, description="Shown to the people at the desk.")


class TakeHandoff(_Request):
    """A person takes a handed-off conversation."""

    agent: str = Field(min_length=1, max_length=100, description="The name the customer sees.")
    agent_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Your helpdesk's id for the person; default: their name.",
    )


class AgentMessage(TakeHandoff):
    """A person's message to the customer; sent before a Take, it takes the handoff."""

    text: str = Field(min_length=1)


class ResolveHandoff(_Request):
    """The people are done: the customer is told, and the bot answers again."""

    agent: str | None = Field(default=None, min_length=1, max_length=100)


class Person(BaseModel):
    id: str
    name: str | None


class HandoffInfo(BaseModel):
    """A conversation handed to people."""

    handoff_id: str
    bot: str
    state: Literal["waiting", "human", "resolved"] = Field(
        description="waiting: nobody has taken it; human: a person has; resolved: it is over."
    )
    outcome: str | None = Field(
        description="How it ended: resolved, timeout (nobody took it in time) or cancelled "
        "(the customer started over or deleted the session)."
    )
    trigger: str = Field(description="What started it: command, faq, fallbacks, tool or api.")
    reason: str
    channel: str = Field(description="The customer's channel: web, telegram, slack…")
    customer: Person
    session_id: str | None = Field(description="The web session, for a customer on the web.")
    agent: Person | None = Field(description="The person who took it.")
    created: datetime
    updated: datetime

    @classmethod
    def of(cls, handoff: Handoff) -> Self:
        agent = None
        if handoff.agent_id is not None:
            agent = Person(id=handoff.agent_id, name=handoff.agent_name)
        return cls(
            handoff_id=handoff.id,
            bot=handoff.bot,
            state=handoff.state,
            outcome=handoff.outcome,
            trigger=handoff.trigger,
            reason=handoff.reason,
            channel=handoff.channel,
            customer=Person(id=handoff.user_id, name=handoff.user_name),
            session_id=handoff.address.get("session") if handoff.channel == "web" else None,
            agent=agent,
            created=datetime.fromtimestamp(handoff.created, UTC),
            updated=datetime.fromtimestamp(handoff.updated, UTC),
        )


class HandoffList(BaseModel):
    handoffs: list[HandoffInfo] = Field(description="Waiting and taken handoffs, oldest first.")


class CustomerText(BaseModel):
    text: str
    time: datetime


DeskEventType = Literal[
    "handoff.requested",
    "handoff.message",
    "handoff.taken",
    "handoff.resolved",
    "handoff.timeout",
    "handoff.delivery_failed",
]


class DeskEvent(BaseModel):
    """What the webhook desk POSTs, signed: `X-Botkit-Signature: sha256=<hex>` is the
    HMAC-SHA256 of the raw body under BOTKIT_HANDOFF_WEBHOOK_SECRET."""

    id: str = Field(description="The same on every retry of this event: handle each id once.")
    type: DeskEventType
    sent_at: int = Field(
        description="Unix seconds when this attempt was sent (signed, with the body): refuse "
        "events more than five minutes old, which are replays."
    )
    handoff: HandoffInfo
    transcript: list[SessionMessage] | None = Field(
        default=None, description="handoff.requested: the conversation's last ten messages."
    )
    message: CustomerText | None = Field(
        default=None, description="handoff.message: what the customer wrote."
    )
    failure: str | None = Field(
        default=None, description="handoff.delivery_failed: why the customer did not get it."
    )
