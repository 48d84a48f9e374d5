"""Answers from an LLM: each endpoint of a bot's chain in turn, with retries, within a
deadline per message; token budgets checked before, usage recorded after.

When every endpoint fails the error goes up to the pipeline, which answers from the
FAQ instead (the chain's last resort) and keeps the user's message in the history.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botkit.errors import APIStatusError, ContextLengthError, LLMError
from botkit.home import BotDefinition
from botkit.llm.base import Completion
from botkit.llm.client import ChatCompletion, CompletionClient
from botkit.llm.params import ChatParams
from botkit.llm.retry import RetryPolicy
from botkit.llm.usage import UsageMeter, today
from botkit.messages import Usage
from botkit.prompting.composer import Prompt
from botkit.prompting.tokens import count_message_tokens
from botkit.stores.base import UsageRecord

logger = logging.getLogger(__name__)

CUT_OFF = "\n\n(My answer was cut short. Ask me to go on if you need the rest.)"
HANDOFF_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "handoff",
        "description": (
            "Hand the conversation over to a person from the support team. Call it when the "
            "customer asks for a person, or when they need help you cannot give."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "reason": {
                    "type": "string",
                    "description": "Why a person should take over, in a few words.",
                }
            },
            "required": ["reason"],
            "additionalProperties": False,
        },
    },
}
"""Offered to the model of a bot with a `[handoff]` table; calling it hands off."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One link of a bot's chain: an API (its shared client) and the model to ask there."""

    client: CompletionClient
    model: str


class LLMResponder:
    """One bot's way to an answer from its chain of endpoints."""

    def __init__(
        self,
        *,
        bot: BotDefinition,
        endpoints: Sequence[Endpoint],
        retry: RetryPolicy | None = None,
        meter: UsageMeter | None = None,
        send_user_id: bool = True,
    ) -> None:
        if not endpoints:
            raise ValueError("an LLM responder needs at least one endpoint")
        self._bot = bot
        self._endpoints = list(endpoints)
        self._params: ChatParams = bot.settings.chat_params()
        self._retry = retry or RetryPolicy()
        self._meter = meter
        self._send_user_id = send_user_id
        self._tools = [HANDOFF_TOOL] if bot.settings.handoff is not None else []
        self._refuse_tools: set[int] = set()
        """Endpoints (their index) whose server refused `tools`: asked without them since."""

    def tuned(self, overrides: Mapping[str, Any], *, handoff: bool = True) -> LLMResponder:
        """This responder with a caller's own completion parameters (a web session's
        `completion`, which the bot's `session_overrides` allowed): `model` replaces the
        model of the bot's first endpoint (its fallbacks are other APIs); the others
        replace the bot's values. Not `handoff`, the model is not offered the handoff tool
        (an answer outside a conversation has nobody to hand over). Raises
        `InvalidParameterError` for a value out of range."""
        if not overrides and (handoff or not self._tools):
            return self
        tuned = copy.copy(self)
        if not handoff:
            tuned._tools = []
        values = dict(overrides)
        if (model := values.pop("model", None)) is not None:
            first = dataclasses.replace(self._endpoints[0], model=model)
            tuned._endpoints = [first, *self._endpoints[1:]]
        if "max_tokens" in values and self._params.max_completion_tokens is not None:
            values["max_completion_tokens"] = values.pop("max_tokens")
        tuned._params = ChatParams.checked(**(self._params.model_dump() | values))
        return tuned

    async def complete(self, prompt: Prompt) -> Completion:
        if (limit := await self._over_budget(prompt)) is not None:
            return limit
        deadline_at = asyncio.get_running_loop().time() + self._retry.deadline
        failure: LLMError | None = None
        for index, endpoint in enumerate(self._endpoints):
            while True:
                tools = self._offers_tools(index)
                attempt = functools.partial(
                    endpoint.client.create,
                    self._body(endpoint, prompt, stream=False, tools=tools),
                    estimated_tokens=self._estimate(prompt),
                )
                try:
                    result = await self._retry.call(attempt, deadline_at=deadline_at)
                except ContextLengthError:
                    raise  # the pipeline composes a shorter prompt and asks again
                except LLMError as err:
                    if tools and self._refused_tools(index, err):
                        continue
                    failure = self._next(endpoint, err)
                    break
                return self._finish(prompt, endpoint, result)
        assert failure is not None
        raise failure

    async def stream(self, prompt: Prompt) -> AsyncIterator[str | Completion]:
        if (limit := await self._over_budget(prompt)) is not None:
            yield limit.text
            yield limit
            return
        loop = asyncio.get_running_loop()
        deadline_at = loop.time() + self._retry.deadline
        failure: LLMError | None = None
        for index, endpoint in enumerate(self._endpoints):
            retry = 0
            while True:
                sent_text = False
                tools = self._offers_tools(index)
                body = self._body(endpoint, prompt, stream=True, tools=tools)
                try:
                    async for item in endpoint.client.stream(
                        body, estimated_tokens=self._estimate(prompt)
                    ):
                        if isinstance(item, str):
                            sent_text = True
                            yield item
                        else:
                            completion = self._finish(prompt, endpoint, item)
                            if completion.text != item.text:  # the cut-off notice
                                yield completion.text[len(item.text) :]
                            yield completion
                            return
                except ContextLengthError:
                    raise
                except LLMError as err:
                    # Text already shown cannot be taken back: a retry would repeat it.
                    if sent_text:
                        raise
                    if tools and self._refused_tools(index, err):
                        continue
                    delay = self._retry.delay_before(retry, err, deadline_at)
                    if delay is None:
                        failure = self._next(endpoint, err)
                        break
                    logger.info("retrying in %.2f s after: %s", delay, err)
                    await asyncio.sleep(delay)
                    retry += 1
        assert failure is not None
        raise failure

    def _offers_tools(self, index: int) -> bool:
        return bool(self._tools) and index not in self._refuse_tools

    def _refused_tools(self, index: int, err: LLMError) -> bool:
        """Whether a server refused the request for its `tools` (a model or server without
        function calling): then that endpoint is asked without them from now on."""
        refused = (
            isinstance(err, APIStatusError)
            and err.status in (400, 422)
            and "tool" in err.message.lower()
        )
        if refused:
            logger.warning(
                "bot %s: %s does not take tools (%s); asking without the handoff tool",
                self._bot.name,
                self._endpoints[index].client.base_url,
                err.message,
            )
            self._refuse_tools.add(index)
        return refused

    def _body(
        self, endpoint: Endpoint, prompt: Prompt, *, stream: bool, tools: bool
    ) -> dict[str, Any]:
        body = self._params.body(endpoint.model, prompt.messages, stream=stream)
        if tools:
            body["tools"] = self._tools
        if self._send_user_id and "user" not in body:
            # A stable pseudonym lets the API's abuse monitoring tell users apart.
            key = f"{self._bot.name}:{prompt.message.user_id}".encode()
            body["user"] = hashlib.sha256(key).hexdigest()[:32]
        return body

    def _estimate(self, prompt: Prompt) -> int:
        limit = self._params.max_completion_tokens or self._params.max_tokens or 0
        return prompt.tokens + limit

    def _next(self, endpoint: Endpoint, err: LLMError) -> LLMError:
        logger.info(
            "bot %s: %s at %s failed (%s); trying the next endpoint if any",
            self._bot.name,
            endpoint.model,
            endpoint.client.base_url,
            err,
        )
        return err

    def _finish(self, prompt: Prompt, endpoint: Endpoint, result: ChatCompletion) -> Completion:
        usage = result.usage or Usage(prompt.tokens, count_message_tokens(result.text))
        if self._meter is not None:
            message = prompt.message
            self._meter.add(
                UsageRecord(
                    today(),
                    self._bot.name,
                    message.user_id,
                    message.conversation_key,
                    result.model or endpoint.model,
                    usage.prompt_tokens,
                    usage.completion_tokens,
                )
            )
        text = result.text + CUT_OFF if result.truncated else result.text
        return Completion(
            text=text,
            finish_reason=result.finish_reason or "stop",
            usage=usage,
            model=result.model or endpoint.model,
            handoff_reason=_handoff_reason(result),
        )

    async def _over_budget(self, prompt: Prompt) -> Completion | None:
        settings = self._bot.settings
        if self._meter is None or not (settings.daily_tokens or settings.daily_tokens_per_user):
            return None
        bot, user = self._bot.name, prompt.message.user_id
        over = (
            settings.daily_tokens is not None
            and await self._meter.used_today(bot) >= settings.daily_tokens
        ) or (
            settings.daily_tokens_per_user is not None
            and await self._meter.used_today(bot, user) >= settings.daily_tokens_per_user
        )
        if not over:
            return None
        text = self._bot.templates.render_or_default("limit", prompt.context)
        return Completion(text=text, kind="limit", model=None)


def _handoff_reason(result: ChatCompletion) -> str | None:
    """The reason the model gave when it called the handoff tool; None when it did not."""
    for call in result.tool_calls:
        if call.name == "handoff":
            try:
                arguments = json.loads(call.arguments or "{}")
            except ValueError:
                arguments = {}
            reason = arguments.get("reason") if isinstance(arguments, dict) else None
            return str(reason) if reason else "the model asked for a person"
    return None
