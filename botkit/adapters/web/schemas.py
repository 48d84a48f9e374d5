"""The JSON bodies of the web channel, as pydantic models: validation and OpenAPI in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from botkit.messages import Handoff, Reply, ReplyKind, Role

METADATA_DEPTH = 8
"""How deeply a session's `metadata` may nest objects and arrays (itself included)."""
METADATA_BYTES = 16 * 1024
"""How large a session's `metadata` may be, as compact JSON."""
SEED_MESSAGES = 100
"""How many messages a session may open with."""


class _Request(BaseModel):
    # A misspelled field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid")


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""What `str.strip()` strips (`str.isspace()`): the document's pattern says the same, not
JSON Schema's `\\S`, whose whitespace is another set."""

Text = Annotated[
    str,
    AfterValidator(_not_blank),
    WithJsonSchema({"type": "string", "pattern": f"[^{WHITESPACE}]"}),
]
"""Text with something in it: empty or only whitespace is refused (422)."""


def _depth(value: Any) -> int:
    """How deeply `value` nests objects and arrays, counted without recursion (a body
    may nest a thousand levels: the check must not be what fails)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _small_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    if _depth(metadata) > METADATA_DEPTH:
        raise ValueError(f"nests deeper than {METADATA_DEPTH} levels of objects and arrays")
    if len(orjson.dumps(metadata)) > METADATA_BYTES:
        raise ValueError(f"larger than {METADATA_BYTES // 1024} KB as JSON")
    return metadata


Metadata = Annotated[dict[str, Any], AfterValidator(_small_metadata)]


class SeedMessage(_Request):
    """A message the session opens with, as if it had been said in it."""

    role: Literal["user", "assistant"]
    content: Text


class CompletionParams(_Request):
    """Completion parameters for a session's answers, each allowed only when the bot lists
    it in `session_overrides` (bots/NAME.toml); the ranges are the API's."""

    model: str | None = Field(default=None, min_length=1, max_length=200)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    stop: str | Annotated[list[str], Field(min_length=1, max_length=4)] | None = None


class NewSession(_Request):
    """Start a session with a bot, optionally with the conversation so far."""

    bot: str | None = Field(default=None, description="Optional when one bot is served.")
    user: str | None = Field(default=None, min_length=1, max_length=256)
    metadata: Metadata = Field(
        default_factory=dict,
        description=f"Anything of yours, shown by GET: at most {METADATA_DEPTH} levels of "
        f"objects and arrays and {METADATA_BYTES // 1024} KB as JSON.",
    )
    messages: list[SeedMessage] = Field(
        default_factory=list,
        max_length=SEED_MESSAGES,
        description="The conversation so far (a contact form, another channel), oldest first: "
        "the model sees it as history. Each within the message size limit.",
    )
    completion: CompletionParams | None = Field(
        default=None, description="Parameters for this session's answers (see the schema)."
    )


class NewPublicSession(_Request):
    """Start a chat-page session."""

    bot: str | None = Field(default=None, description="Default: the first bot served.")


class NewMessage(_Request):
    """A user message; with `stream` the reply arrives as Server-Sent Events."""

    message: Text
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
    completion: dict[str, Any] = Field(
        description="The completion parameters the session was created with ({} for none)."
    )
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
    feedback: bool = Field(default=True, description="Whether answers take 👍/👎 votes.")


class ModelInfo(BaseModel):
    bot: str
    model: str = Field(description='The model the bot asks first; "faq" when it answers offline.')
    description: str


class OpenAIModel(BaseModel):
    id: str = Field(description="The bot's name.")
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    """The bots served, as botkit lists them (`models`) and as OpenAI does (`object`, `data`)."""

    object: Literal["list"]
    data: list[OpenAIModel]
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


# ---- one-off answers ------------------------------------------------------------------------

ANSWER_DOCUMENTS = 20
ANSWER_CHARACTERS = 100_000
"""The most documents an answer may be given, and their characters in all (413 beyond)."""


class Document(_Request):
    title: str = Field(default="", max_length=500)
    text: Text


class Example(_Request):
    """A question and the answer you would give, shown to the model as an earlier exchange."""

    question: Text
    answer: Text


class NewAnswer(_Request):
    """A question answered once, from the bot's FAQ and the documents given; nothing is kept
    as a conversation."""

    bot: str | None = Field(default=None, description="Optional when one bot is served.")
    question: Text
    documents: list[Text | Document] = Field(
        default_factory=list,
        json_schema_extra={"maxItems": ANSWER_DOCUMENTS},
        description=f"Text to answer from, ranked with the bot's FAQ: at most "
        f"{ANSWER_DOCUMENTS}, {ANSWER_CHARACTERS:,} characters in all (413 beyond).",
    )
    examples: list[Example] = Field(default_factory=list, max_length=20)


class AnswerSource(BaseModel):
    """A FAQ snippet (`faq`: its file) or a document (`document`: its index, and `title`)
    handed to the model, best first."""

    faq: str | None = None
    document: int | None = None
    title: str | None = None
    score: float = Field(description="How well it matches the question, 0 to 1.")


class Answer(BaseModel):
    answer: str
    sources: list[AnswerSource]
    usage: TokenUsage
    finish_reason: str
    kind: ReplyKind = Field(
        description='"answer", "fallback" (nothing matched well enough offline, or the '
        'model failed) or "limit" (the bot\'s daily token budget is spent).'
    )


# ---- the OpenAI-compatible API ---------------------------------------------------------------


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class UserTextPart(BaseModel):
    type: Literal["text"]
    text: Text


def _refused(value: list[Any]) -> list[Any]:
    if value:
        raise ValueError("not supported: a bot answers in text, from its own prompt and FAQ")
    return value


Unsupported = Annotated[
    list[Any],
    AfterValidator(_refused),
    WithJsonSchema({"type": "array", "maxItems": 0, "description": "Not supported."}),
]


class InstructionMessage(BaseModel):
    """Added to the bot's system prompt, after it."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer"]
    content: str | list[TextPart]


class UserMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["user"]
    content: Text | Annotated[list[UserTextPart], Field(min_length=1)]


class EarlierAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["assistant"]
    content: str | list[TextPart] | None = None


ChatMessage = Annotated[
    InstructionMessage | UserMessage | EarlierAnswer, Field(discriminator="role")
]
"""A message of the conversation; each text within the message size limit (413)."""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat-completions request; `model` is a bot. Other OpenAI parameters are
    accepted; sampling parameters apply only where the bot's `session_overrides` lists them."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(description="The bot to talk to (GET /v1/models lists them).")
    messages: list[ChatMessage] = Field(
        min_length=1, description="The conversation; the last message must be the user's."
    )
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: Literal[1] | None = Field(default=None, description="Only 1: a bot gives one answer.")
    tools: Unsupported = Field(default_factory=list)
    functions: Unsupported = Field(default_factory=list)
    user: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Your id for the person: their exchanges are then kept as their "
        "conversation with the bot (channel `openai`), and count toward per-user budgets.",
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    stop: str | Annotated[list[str], Field(min_length=1, max_length=4)] | None = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str
    refusal: None = None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str = Field(description="The bot that answered.")
    choices: list[ChatChoice]
    usage: CompletionUsage


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    finish_reason: Literal["stop", "length"] | None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One `data:` event of a streamed completion; the stream ends with `data: [DONE]`."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice] = Field(
        description="Empty in the last chunk, which carries the usage, when "
        "`stream_options.include_usage` asked for it."
    )
    usage: CompletionUsage | None = Field(
        default=None, description="Only with `stream_options.include_usage`: null but in the last."
    )


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class OpenAIErrorBody(BaseModel):
    """OpenAI's error shape; `code` and `message` are botkit's as on every route."""

    error: OpenAIErrorDetail


# ---- handing over to people --------------------------------------------------------------


class NewHandoff(_Request):
    """Hand a session to people (the bot's `[handoff]` desk)."""

    reason: str = Field(default="", max_length=1000, description="Shown to the people at the desk.")


class NewFeedback(_Request):
    """A vote on the bot's answer to a message: one per answer, a second one replaces it."""

    score: Literal[1, -1] = Field(description="1 for 👍, -1 for 👎.")
    comment: str | None = Field(default=None, max_length=2000)


class FeedbackResult(BaseModel):
    status: Literal["recorded", "gone"] = Field(
        description='"gone" (chat page only) when the answer no longer exists.'
    )
    offer_person: bool = Field(
        default=False, description="A 👎 the bot answers by offering a person (`/human`)."
    )
    note: str = Field(description="What to tell the customer.")


class UserForgotten(BaseModel):
    """What `DELETE /v1/users/{user_id}` deleted."""

    user: str
    conversations: int = Field(description="Conversations deleted whole.")
    shared: int = Field(description="Conversations with others: only the user's part went.")
    messages: int
    votes: int
    handoffs: int
    usage_rows: int = Field(description="Token rows that no longer name the user.")


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

    text: Text


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
