"""The whole flow of botkit: an incoming message in, a reply out.

    incoming message → load the conversation → compose the prompt
    → get a completion → append both turns → reply

One conversation's messages are handled strictly in order; different
conversations run concurrently. `handle` answers in one piece; `stream` yields
the answer as it is generated, for adapters that edit a message as text arrives.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence

from botkit.errors import BotkitError, ContextLengthError
from botkit.home import BotDefinition
from botkit.llm.base import Completion, Responder
from botkit.llm.offline import FaqResponder
from botkit.locks import ConversationLocks
from botkit.messages import IncomingMessage, Reply, Turn
from botkit.prompting.composer import Prompt, PromptComposer
from botkit.prompting.tokens import count_message_tokens
from botkit.stores.base import ConversationStore

logger = logging.getLogger(__name__)

COMMANDS = {"/start": "welcome", "/help": "help", "/reset": "reset"}
INTERRUPTED = "\n\n(Sorry, my answer was interrupted. Please ask again.)"

ReplyListener = Callable[[IncomingMessage, Reply, float], None]
"""Called with each message, its reply and the seconds it took (metrics, logs)."""


class Pipeline:
    """One bot's message path, built from the parts it is handed."""

    def __init__(
        self,
        *,
        bot: BotDefinition,
        store: ConversationStore,
        responder: Responder,
        listeners: Sequence[ReplyListener] = (),
    ) -> None:
        self.bot = bot
        self.store = store
        self.responder = responder
        self.composer = PromptComposer(bot)
        self.listeners = list(listeners)
        self._offline = FaqResponder(bot)
        self._locks = ConversationLocks()

    async def handle(self, message: IncomingMessage) -> Reply | None:
        """Answer one message; `None` for an empty one, which never reaches the model."""
        started = time.perf_counter()
        text = message.text.strip()
        if not text:
            return None
        if (command := parse_command(text)) is not None:
            return self._done(message, await self._command(command, message), started)
        message, notice = self._cut(message, text)
        async with self._locks.hold(message.conversation_key):
            prompt = await self._prompt(message)
            completion = await self._complete(prompt)
            reply = await self._remember(message, prompt, completion, notice)
        return self._done(message, reply, started)

    def stream(self, message: IncomingMessage) -> ReplyStream:
        """Like `handle`, but the answer arrives as text deltas; see `ReplyStream`."""
        return ReplyStream(self._stream(message))

    async def _stream(self, message: IncomingMessage) -> AsyncIterator[str | Reply]:
        started = time.perf_counter()
        text = message.text.strip()
        if not text:
            return
        if (command := parse_command(text)) is not None:
            reply = await self._command(command, message)
            yield reply.text
            yield self._done(message, reply, started)
            return
        message, notice = self._cut(message, text)
        async with self._locks.hold(message.conversation_key):
            prompt = await self._prompt(message)
            completion = None
            async for item in self._complete_streaming(prompt):
                if isinstance(item, Completion):
                    completion = item
                else:
                    yield item
            assert completion is not None, "a responder's stream ends with a Completion"
            if notice:
                yield notice
            reply = await self._remember(message, prompt, completion, notice)
        yield self._done(message, reply, started)

    async def _prompt(self, message: IncomingMessage) -> Prompt:
        settings = self.bot.settings
        history = await self.store.load(
            message.conversation_key, limit=settings.history_turns, idle_reset=settings.idle_reset
        )
        return self.composer.compose(message, history)

    async def _complete(self, prompt: Prompt) -> Completion:
        try:
            try:
                return await self.responder.complete(prompt)
            except ContextLengthError:
                return await self.responder.complete(self._tighter(prompt))
        except Exception as err:
            return self._fail(prompt, err)

    async def _complete_streaming(self, prompt: Prompt) -> AsyncIterator[str | Completion]:
        received: list[str] = []
        try:
            try:
                async for item in self.responder.stream(prompt):
                    if isinstance(item, str):
                        received.append(item)
                    yield item
            except ContextLengthError:
                async for item in self.responder.stream(self._tighter(prompt)):
                    if isinstance(item, str):
                        received.append(item)
                    yield item
        except Exception as err:
            if not received:
                fallback = self._fail(prompt, err)
                yield fallback.text
                yield fallback
                return
            logger.error("bot %s: the answer broke off mid-stream: %s", self.bot.name, err)
            yield INTERRUPTED
            yield Completion(
                text="".join(received) + INTERRUPTED,
                finish_reason="error",
                error=type(err).__name__,
            )

    def _tighter(self, prompt: Prompt) -> Prompt:
        """The prompt again with half the history budget, after a context-length error."""
        budget = self.bot.settings.context_tokens // 2
        logger.warning(
            "bot %s: the prompt was too long for the model; retrying with %d tokens of context",
            self.bot.name,
            budget,
        )
        return self.composer.compose(prompt.message, prompt.history, context_tokens=budget)

    def _fail(self, prompt: Prompt, err: Exception) -> Completion:
        # The user still gets an answer, and their message is still stored.
        logger.error(
            "bot %s: no completion (%s: %s); answering from the FAQ",
            self.bot.name,
            type(err).__name__,
            err,
            exc_info=not isinstance(err, OSError | BotkitError),
        )
        return dataclasses.replace(self._offline.answer(prompt), error=type(err).__name__)

    async def _remember(
        self, message: IncomingMessage, prompt: Prompt, completion: Completion, notice: str
    ) -> Reply:
        now = time.time()
        await self.store.append(
            message.conversation_key,
            [
                Turn("user", message.text, now, prompt.question_tokens),
                Turn("assistant", completion.text, now, count_message_tokens(completion.text)),
            ],
        )
        return Reply(
            text=completion.text + notice,
            conversation_id=message.conversation_id,
            kind=completion.kind,
            in_reply_to=message.message_id,
            finish_reason=completion.finish_reason,
            usage=completion.usage,
            model=completion.model,
            error=completion.error,
        )

    async def _command(self, command: str, message: IncomingMessage) -> Reply:
        if command == "/reset":
            await self.store.reset(message.conversation_key)
        return Reply(
            text=self.composer.render(COMMANDS[command], message),
            conversation_id=message.conversation_id,
            kind="command",
            in_reply_to=message.message_id,
        )

    def _cut(self, message: IncomingMessage, text: str) -> tuple[IncomingMessage, str]:
        """The message with its stripped `text`, cut to the size limit, and the notice."""
        limit = self.bot.settings.max_message_chars
        notice = ""
        if len(text) > limit:
            text = text[:limit]
            notice = f"\n\n(Your message was long, so I read only its first {limit} characters.)"
        if text != message.text:
            message = dataclasses.replace(message, text=text)
        return message, notice

    def _done(self, message: IncomingMessage, reply: Reply, started: float) -> Reply:
        elapsed = time.perf_counter() - started
        for listener in self.listeners:
            listener(message, reply, elapsed)
        return reply


class ReplyStream:
    """The answer to one message as it is generated.

        stream = pipeline.stream(message)
        async for delta in stream:   # text deltas, in order
            ...
        stream.reply                 # the whole Reply (None for an empty message)

    Joined, the deltas are exactly `reply.text`.
    """

    def __init__(self, source: AsyncIterator[str | Reply]) -> None:
        self._source = source
        self.reply: Reply | None = None

    async def __aiter__(self) -> AsyncIterator[str]:
        async for item in self._source:
            if isinstance(item, Reply):
                self.reply = item
            else:
                yield item


def parse_command(text: str) -> str | None:
    """`/reset`, `/Reset` and `/reset@SomeBot` are the command `/reset`; other text is not."""
    if not text.startswith("/"):
        return None
    word = text.split(maxsplit=1)[0].split("@", 1)[0].lower()
    return word if word in COMMANDS else None
