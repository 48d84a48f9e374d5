"""Every bot as an OpenAI-compatible model: `GET /v1/models` and `POST /v1/chat/completions`,
so the OpenAI SDKs and the tools built on them talk to a bot by changing a base URL.

`model` names a bot; the caller's `messages` are the conversation. The bot's system
prompt and FAQ selection (for the last user message) come first; a `system` or
`developer` message the caller sends is added to the system prompt after the bot's
own, wherever it stood. The bot's responder answers, with its limits, usage
accounting and offline fallback (an offline bot answers from its FAQ). Nothing is
stored, unless `user` names the person: then each exchange is kept as their
conversation (channel `openai`). Sampling parameters apply only where the bot's
`session_overrides` lists them, else the bot's own settings do. Errors are in
OpenAI's shape, which holds botkit's `code` and `message`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from botkit.adapters.web.api import KeyAccess
from botkit.adapters.web.overrides import tuned
from botkit.adapters.web.protocol import ApiError, body_limit, endpoint, read_json
from botkit.adapters.web.replies import SSE_HEADERS
from botkit.adapters.web.schemas import (
    SEED_MESSAGES,
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    CompletionUsage,
    ModelInfo,
    ModelList,
    OpenAIModel,
)
from botkit.errors import ConfigError, StoreError
from botkit.home import BotDefinition
from botkit.llm.base import Completion
from botkit.messages import IncomingMessage, Role, Turn, Usage, conversation_key
from botkit.pipeline import Pipeline
from botkit.prompting.composer import Prompt
from botkit.prompting.tokens import count_message_tokens
from botkit.stores.base import ConversationStore

logger = logging.getLogger(__name__)

CHANNEL = "openai"
"""The channel of a chat-completions conversation kept for a `user`."""
OWNER = "botkit"
Keeper = Callable[[Completion], Awaitable[None]]
"""Keeps an exchange in the user's conversation."""
SAMPLING = ("temperature", "max_tokens", "top_p", "presence_penalty", "frequency_penalty", "stop")
"""Request parameters a bot's `session_overrides` may let a caller set."""


class CompletionsApi:
    """The bots as models, with the sessions API's keys."""

    def __init__(
        self,
        *,
        pipelines: Mapping[str, Pipeline],
        model_of: Callable[[BotDefinition], str],
        store: ConversationStore,
        access: KeyAccess,
        max_message_chars: int,
    ) -> None:
        self._pipelines = pipelines
        self._model_of = model_of  # asked each time: a reloaded bot may name another
        self._store = store
        self._access = access
        self._max_chars = max_message_chars
        self._created = int(time.time())

    def routes(self) -> list[Route]:
        return [
            Route("/v1/models", endpoint(self.list_models, openai=True), methods=["GET"]),
            Route("/v1/chat/completions", endpoint(self.chat, openai=True), methods=["POST"]),
        ]

    async def list_models(self, request: Request) -> Response:
        self._access.owner(request)
        listed = ModelList(
            object="list",
            data=[
                OpenAIModel(id=name, object="model", created=self._created, owned_by=OWNER)
                for name in self._pipelines
            ],
            models=[
                ModelInfo(bot=name, model=self._model_of(p.bot), description=p.bot.description)
                for name, p in self._pipelines.items()
            ],
        )
        return JSONResponse(listed.model_dump(mode="json"))

    async def chat(self, request: Request) -> Response:
        owner = self._access.owner(request)
        limit = body_limit(self._max_chars * SEED_MESSAGES)
        body = await read_json(request, ChatCompletionRequest, max_bytes=limit)
        pipeline = self._pipelines.get(body.model)
        if pipeline is None:
            raise ApiError(
                404,
                "model_not_found",
                f"model: {body.model!r} is not a bot served here "
                f"(served: {', '.join(self._pipelines)})",
                param="model",
            )
        instructions, history, question = conversation(body.messages, max_chars=self._max_chars)
        pipeline = tuned(pipeline, sampling(pipeline, body), handoff=False)
        user = body.user
        message = IncomingMessage(
            channel=CHANNEL,
            bot=pipeline.bot.name,
            conversation_id=user or "chat",
            user_id=user or owner,
            text=question,
            message_id=f"chatcmpl-{secrets.token_urlsafe(18)}",
        )
        prompt = compose(pipeline, message, history, instructions)
        keep = self._keeper(message) if user else None
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            chunks = stream(pipeline, message, prompt, include_usage=include_usage, keep=keep)
            return StreamingResponse(chunks, media_type="text/event-stream", headers=SSE_HEADERS)
        completion = await whole(pipeline, message, prompt)
        if keep is not None:
            await keep(completion)
        return JSONResponse(response(message, completion).model_dump(mode="json"))

    def _keeper(self, message: IncomingMessage) -> Keeper:
        async def keep(completion: Completion) -> None:
            """The exchange, added to the user's conversation (the answer was given anyway)."""
            now = time.time()
            turns = [
                Turn("user", message.text, now, count_message_tokens(message.text)),
                Turn(
                    "assistant",
                    completion.text,
                    now,
                    count_message_tokens(completion.text),
                    kind=completion.kind,
                ),
            ]
            key = conversation_key(message.bot, CHANNEL, message.conversation_id)
            try:
                await self._store.append(key, turns)
            except StoreError as err:
                logger.warning("could not keep a chat completion of %s: %s", key, err)

        return keep


def sampling(pipeline: Pipeline, body: ChatCompletionRequest) -> dict[str, Any]:
    """The request's sampling parameters that the bot lets a caller set."""
    given = {name: getattr(body, name) for name in SAMPLING if getattr(body, name) is not None}
    if body.max_completion_tokens is not None:
        given["max_tokens"] = body.max_completion_tokens
    permitted = pipeline.bot.settings.session_overrides
    return {name: value for name, value in given.items() if name in permitted}


def texts_of(message: ChatMessage) -> list[str]:
    content = message.content
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    return [part.text for part in content]


def text_of(message: ChatMessage) -> str:
    return "".join(texts_of(message))


def conversation(messages: Sequence[ChatMessage], *, max_chars: int) -> tuple[str, list[Turn], str]:
    """The caller's instructions (their system messages), the turns before the question,
    and the question: the last message, which must be the user's. Each text is within
    the message size limit."""
    for number, message in enumerate(messages):
        for text in texts_of(message):
            if len(text) > max_chars:
                where = f"messages.{number}.content"
                raise ApiError(
                    413,
                    "message_too_large",
                    f"{where}: longer than {max_chars} characters",
                    param=where,
                )
    last = messages[-1]
    if last.role != "user":
        raise ApiError(
            422,
            "invalid_request",
            f"messages.{len(messages) - 1}.role: the last message must be the user's",
            param="messages",
        )
    question = text_of(last).strip()
    instructions = []
    history = []
    for message in messages[:-1]:
        text = text_of(message)
        if message.role in ("system", "developer"):
            if text.strip():
                instructions.append(text.strip())
        elif text.strip():
            role: Role = "user" if message.role == "user" else "assistant"
            history.append(Turn(role, text, 0.0, count_message_tokens(text)))
    return "\n\n".join(instructions), history, question


def compose(
    pipeline: Pipeline, message: IncomingMessage, history: Sequence[Turn], instructions: str
) -> Prompt | None:
    """The prompt; None when a template fails at run time (logged: the fallback answers)."""
    try:
        return pipeline.composer.compose(message, history, instructions=instructions)
    except ConfigError as err:
        logger.error("bot %s: cannot compose a prompt: %s", pipeline.bot.name, err)
        return None


def fallback(pipeline: Pipeline, message: IncomingMessage) -> Completion:
    context = pipeline.composer.context(message)
    text = pipeline.bot.templates.render_or_default("fallback", context)
    return Completion(text=text, model="faq", kind="fallback")


async def whole(pipeline: Pipeline, message: IncomingMessage, prompt: Prompt | None) -> Completion:
    completion = None
    async for item in answer(pipeline, message, prompt, streaming=False):
        if isinstance(item, Completion):
            completion = item
    assert completion is not None
    return completion


async def answer(
    pipeline: Pipeline, message: IncomingMessage, prompt: Prompt | None, *, streaming: bool
) -> AsyncIterator[str | Completion]:
    """Text deltas joining to the answer's text, then its `Completion`. A responder that
    gives its answer whole (the FAQ) has it sent as one delta."""
    if prompt is None:
        completion = fallback(pipeline, message)
        yield completion.text
        yield completion
        return
    shown = False
    async for item in pipeline.complete(prompt, streaming=streaming):
        if isinstance(item, Completion):
            if not shown and item.text:
                yield item.text
            yield item
            return
        shown = True
        yield item


def finish_reason(completion: Completion) -> Literal["stop", "length"]:
    """OpenAI's finish reasons: an answer cut off by its token limit is `length`; the rest
    (an interrupted answer ends with a notice, not mid-word) `stop`."""
    return "length" if completion.finish_reason == "length" else "stop"


def usage_of(usage: Usage) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


def response(message: IncomingMessage, completion: Completion) -> ChatCompletion:
    return ChatCompletion(
        id=message.message_id or "",
        object="chat.completion",
        created=int(message.timestamp.timestamp()),
        model=message.bot,
        choices=[
            ChatChoice(
                index=0,
                message=AssistantMessage(role="assistant", content=completion.text),
                finish_reason=finish_reason(completion),
            )
        ],
        usage=usage_of(completion.usage),
    )


async def stream(
    pipeline: Pipeline,
    message: IncomingMessage,
    prompt: Prompt | None,
    *,
    include_usage: bool,
    keep: Keeper | None,
) -> AsyncIterator[bytes]:
    """`chat.completion.chunk` events: the role, the text deltas, the finish reason, the
    usage when asked for, then `[DONE]`."""
    head = {
        "id": message.message_id,
        "object": "chat.completion.chunk",
        "created": int(message.timestamp.timestamp()),
        "model": message.bot,
    }
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _event({**head, "choices": [choice], **extra})

    yield chunk({"role": "assistant", "content": ""})
    completion = None
    async for item in answer(pipeline, message, prompt, streaming=True):
        if isinstance(item, Completion):
            completion = item
        elif item:
            yield chunk({"content": item})
    assert completion is not None
    yield chunk({}, finish_reason(completion))
    if include_usage:
        usage = usage_of(completion.usage).model_dump()
        yield _event({**head, "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"
    if keep is not None:
        await keep(completion)


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"
