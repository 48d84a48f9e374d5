"""The JSON bodies of the web channel, as pydantic models: validation and OpenAPI in one place."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from botkit.messages import Reply, ReplyKind, Role


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
    role: Role = Field(description='"agent" for a message from a person who took over.')
    content: str
    time: datetime
    name: str | None = Field(default=None, description="The agent's name (role agent).")


class PageMessage(SessionMessage):
    html: str | None = Field(description="An assistant message's Markdown as safe HTML.")


class SessionState(BaseModel):
    session_id: str
    bot: str
    user: str
    created: datetime
    metadata: dict[str, Any]
    messages: list[SessionMessage]


class PageSession(BaseModel):
    """A chat-page session: the bot's welcome and the messages so far, ready to show."""

    session_id: str
    bot: str
    title: str
    welcome_html: str
    messages: list[PageMessage]


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
