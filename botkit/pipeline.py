"""The whole flow of botkit: an incoming message in, a reply out.

    accept (the inbox keeps it until the reply is posted)
    → lock the conversation (across every worker) → load its history
    → a person handles it? relay the message to them
    → store the message → compose the prompt → get a completion → store the answer
    → reply (the adapter posts it, then marks the inbox item done)

One conversation's messages are handled strictly in order, by whichever worker
holds its lock; different conversations run concurrently. The user's message is
stored before the model is asked, so a crash loses nothing: the inbox item comes
back to a live worker, which finds the message stored (and the answer too, if the
crash came after it) and carries on from there. `stream` yields the answer as it
is generated; `handle` is the same path, answered in one piece.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botkit.errors import BotkitError, ConfigError, ContextLengthError
from botkit.home import BotDefinition
from botkit.llm.base import Completion, Responder
from botkit.llm.offline import FaqResponder
from botkit.messages import Handoff, IncomingMessage, Reply, ReplyKind, Turn
from botkit.prompting.composer import Prompt, PromptComposer
from botkit.prompting.faq import FaqSnippet
from botkit.prompting.templates import DEFAULTS
from botkit.prompting.tokens import count_message_tokens
from botkit.redaction import Redactor
from botkit.stores.base import InboxItem, Lease, Store

if TYPE_CHECKING:
    from botkit.handoff import Handoffs

logger = logging.getLogger(__name__)

COMMANDS = {
    "/start": "welcome",
    "/help": "help",
    "/reset": "reset",
    "/human": "handoff",
    "/agent": "handoff",
}
INTERRUPTED = "\n\n(Sorry, my answer was interrupted. Please ask again.)"

ReplyListener = Callable[[IncomingMessage, Reply, float], None]
CompletionListener = Callable[[IncomingMessage, Completion, float], None]
"""Hears of an answer given outside a conversation (`Pipeline.complete`), and its seconds."""
"""Called with each message, its reply and the seconds it took (metrics, logs)."""


@dataclass(frozen=True, slots=True)
class Begin:
    """Said once the pipeline knows whether the bot will answer (so an adapter may show a
    typing indicator) or the message goes to a person (show nothing)."""

    answering: bool


class Pipeline:
    """One bot's message path, built from the parts it is handed."""

    def __init__(
        self,
        *,
        bot: BotDefinition,
        store: Store,
        responder: Responder,
        listeners: Sequence[ReplyListener] = (),
        handoffs: Handoffs | None = None,
    ) -> None:
        self.bot = bot
        self.store = store
        self.responder = responder
        self.composer = PromptComposer(bot)
        self.listeners = list(listeners)
        self.completion_listeners: list[CompletionListener] = []
        self.handoffs = handoffs if handoffs is not None and bot.settings.handoff else None
        self._offline = FaqResponder(bot)
        self._redact = Redactor(bot.settings.redact)

    def replace_bot(self, bot: BotDefinition, responder: Responder) -> None:
        """Answer with a new definition of the same bot from the next message on (a reload).

        A message under way finishes with the definition it started with: each message
        runs on a shallow copy of the pipeline taken as it arrives, which keeps the parts
        replaced here. Whether the bot hands off stays as it was (that needs a restart).
        """
        self.bot = bot
        self.responder = responder
        self.composer = PromptComposer(bot)
        self._offline = FaqResponder(bot)
        self._redact = Redactor(bot.settings.redact)

    def redact(self, text: str) -> str:
        """`text` as the bot keeps a customer's words: what it redacts replaced."""
        return self._redact(text) if self._redact else text

    # --- the inbox ---------------------------------------------------------------------

    async def accept(
        self, message: IncomingMessage, *, address: dict[str, Any], dedupe: str | None = None
    ) -> InboxItem | None:
        """Keep the message in the inbox before the platform is told it arrived; `address`
        is what the channel needs to reply later, from any worker. None when `dedupe`
        names a message accepted before (a platform's re-delivery). Raises `StoreError`."""
        if self._redact:  # not even the inbox keeps what the bot redacts
            message = dataclasses.replace(message, text=self._redact(message.text))
        return await self.store.inbox_add(
            channel=inbox_channel(message.channel, message.bot),
            conversation=message.conversation_key,
            payload={"kind": "message", "message": message.to_json(), "address": address},
            dedupe=dedupe,
        )

    async def finish(self, item: InboxItem) -> None:
        """The reply is posted: the inbox forgets the message."""
        await self.store.inbox_done(item)

    # --- answering ---------------------------------------------------------------------

    async def handle(
        self, message: IncomingMessage, *, item: InboxItem | None = None
    ) -> Reply | None:
        """Answer one message in one piece; `None` for an empty one, which never reaches
        the model."""
        stream = ReplyStream(copy.copy(self)._run(message, item, streaming=False))
        async for _ in stream:
            pass
        return stream.reply

    def stream(
        self, message: IncomingMessage, *, item: InboxItem | None = None, incremental: bool = True
    ) -> ReplyStream:
        """Like `handle`, but the answer arrives as text deltas; see `ReplyStream`. Not
        `incremental`, the model is asked for the answer in one piece (one delta)."""
        return ReplyStream(copy.copy(self)._run(message, item, streaming=incremental))

    async def _run(
        self, message: IncomingMessage, item: InboxItem | None, *, streaming: bool
    ) -> AsyncIterator[str | Reply | Begin]:
        started = time.perf_counter()
        text = message.text.strip()
        if not text:
            return
        command = parse_command(text)
        if command in ("/start", "/help"):
            reply = self._reply(message, self._render(COMMANDS[command], message), "command")
            yield Begin(answering=True)
            yield reply.text
            yield self._done(message, reply, started)
            return
        message, notice = self._cut(message, text)
        address = item.payload.get("address", {}) if item is not None else {}
        key = message.conversation_key
        async with self.store.lock(key) as lease:
            history = await self._history(message)
            handoff = await self.store.handoff_current(key) if self.handoffs else None
            stored, answer = _earlier(history, message, item)
            if answer is not None:  # answered before a crash: say it again, ask nobody
                yield Begin(answering=True)
                yield answer.content
                yield self._done(message, self._reply(message, answer.content, "answer"), started)
                return
            if command == "/reset":
                await self.store.reset(key)
                if handoff is not None and self.handoffs is not None:
                    await self.handoffs.cancel(handoff)
                reply = self._reply(message, self._render("reset", message), "command")
                yield Begin(answering=True)
                yield reply.text
                yield self._done(message, reply, started)
                return
            if stored is None:
                await self._remember(message, lease)
            if handoff is not None and self.handoffs is not None:
                yield Begin(answering=False)
                await self.handoffs.relay(handoff, message)
                reply = self._reply(message, "", "relayed", handoff=handoff.id)
                yield self._done(message, reply, started)
                return
            yield Begin(answering=True)
            if command is not None:  # /human, /agent
                reply = await self._hand_off(message, history, address, lease, "command", "")
                yield reply.text
                yield self._done(message, reply, started)
                return
            prompt = self._compose(message, history)
            shown = False
            if prompt is None:
                completion = self._fallback(message)
            elif (snippet := self._handoff_snippet(prompt)) is not None:
                reason = f"asked: {snippet.question}"
                reply = await self._hand_off(message, history, address, lease, "faq", reason)
                yield reply.text
                yield self._done(message, reply, started)
                return
            else:
                answered: Completion | None = None
                async for delta in self._complete(prompt, streaming=streaming):
                    if isinstance(delta, Completion):
                        answered = delta
                    else:
                        shown = True
                        yield delta
                assert answered is not None, "a responder ends with a Completion"
                completion = answered
            # A responder that streams nothing (the FAQ, a failure's fallback) has its text
            # shown here, once it is known not to hand the conversation off.
            trigger = self._handoff_trigger(completion, history, shown=shown)
            if trigger is not None:
                reason = completion.handoff_reason or "the bot could not answer"
                said = completion.text.strip() if shown else ""
                reply = await self._hand_off(
                    message, history, address, lease, trigger, reason, said=said
                )
                yield reply.text[len(said) :] if said else reply.text
                yield self._done(message, reply, started)
                return
            if not shown and completion.text:
                yield completion.text
            if notice:
                yield notice
            reply = self._reply(
                message,
                completion.text + notice,
                completion.kind,
                finish_reason=completion.finish_reason,
                usage=completion.usage,
                model=completion.model,
                error=completion.error,
                faq=tuple(m.snippet.source for m in prompt.faq) if prompt else (),
                faq_score=prompt.faq[0].confidence if prompt and prompt.faq else None,
            )
            await self._store_answer(message, reply, lease)
        yield self._done(message, reply, started)

    async def hand_off(
        self, message: IncomingMessage, *, trigger: str, reason: str, address: dict[str, Any]
    ) -> tuple[Handoff, bool]:
        """Hand the conversation to people from outside its messages (the sessions API);
        `message` names the customer (its text is not stored). The customer is told as
        for /human. True when handed off now; False when it already was (nobody is told
        again). Only for a bot with a `[handoff]` table."""
        assert self.handoffs is not None, f"bot {self.bot.name} has no [handoff] table"
        key = message.conversation_key
        async with self.store.lock(key) as lease:
            current = await self.store.handoff_current(key)
            if current is not None:
                return current, False
            history = await self._history(message)
            reply = await self._hand_off(message, history, address, lease, trigger, reason)
        assert reply.handoff is not None
        handoff = await self.store.handoff_get(reply.handoff)
        assert handoff is not None
        return handoff, True

    def complete(
        self, prompt: Prompt, *, streaming: bool = False
    ) -> AsyncIterator[str | Completion]:
        """The bot's answer to a prompt composed outside a conversation (the answers and
        chat-completions APIs): text deltas, then the `Completion`, with the bot's limits,
        usage and offline fallback, as for a message. Nothing is stored; the
        `completion_listeners` (the metrics) hear of it."""
        return self._heard(prompt.message, copy.copy(self)._complete(prompt, streaming=streaming))

    async def _heard(
        self, message: IncomingMessage, items: AsyncIterator[str | Completion]
    ) -> AsyncIterator[str | Completion]:
        started = time.perf_counter()
        async for item in items:
            if isinstance(item, Completion):
                elapsed = time.perf_counter() - started
                for listener in self.completion_listeners:
                    listener(message, item, elapsed)
            yield item

    # --- the steps ---------------------------------------------------------------------

    async def _history(self, message: IncomingMessage) -> list[Turn]:
        settings = self.bot.settings
        return await self.store.load(
            message.conversation_key,
            limit=settings.history_turns,
            idle_reset=settings.idle_reset,
            # What could fit beside the answer: the composer trims it exactly.
            max_tokens=settings.context_tokens - settings.max_tokens,
        )

    async def _remember(self, message: IncomingMessage, lease: Lease) -> None:
        """Store the user's message before anything is asked of the model."""
        turn = Turn(
            "user",
            message.text,
            time.time(),
            count_message_tokens(message.text),
            id=message.message_id,
        )
        await self.store.append(message.conversation_key, [turn], lease=lease)

    async def _store_answer(self, message: IncomingMessage, reply: Reply, lease: Lease) -> None:
        """The answer is the last write under the lock: both in one trip to the store."""
        turn = Turn(
            "assistant",
            reply.text,
            time.time(),
            count_message_tokens(reply.text),
            reply_to=message.message_id,
            kind=reply.kind,
        )
        await self.store.append_and_release(message.conversation_key, [turn], lease)

    def _compose(self, message: IncomingMessage, history: Sequence[Turn]) -> Prompt | None:
        """The prompt, or None when a template fails at run time (logged with file:line):
        the customer then gets the fallback text, never an error."""
        try:
            return self.composer.compose(message, history)
        except ConfigError as err:
            logger.error("bot %s: cannot compose a prompt: %s", self.bot.name, err)
            return None

    async def _complete(
        self, prompt: Prompt, *, streaming: bool
    ) -> AsyncIterator[str | Completion]:
        """Text deltas, then the `Completion`; a failure becomes the offline answer."""
        received: list[str] = []
        try:
            try:
                async for item in self._ask(prompt, streaming=streaming):
                    if isinstance(item, str):
                        received.append(item)
                    yield item
            except ContextLengthError:
                async for item in self._ask(self._tighter(prompt), streaming=streaming):
                    if isinstance(item, str):
                        received.append(item)
                    yield item
        except Exception as err:
            if not received:
                yield self._fail(prompt, err)
                return
            logger.error("bot %s: the answer broke off mid-stream: %s", self.bot.name, err)
            yield INTERRUPTED
            yield Completion(
                text="".join(received) + INTERRUPTED,
                finish_reason="error",
                error=type(err).__name__,
            )

    async def _ask(self, prompt: Prompt, *, streaming: bool) -> AsyncIterator[str | Completion]:
        if streaming:
            async for item in self.responder.stream(prompt):
                yield item
        else:
            yield await self.responder.complete(prompt)

    def _tighter(self, prompt: Prompt) -> Prompt:
        """The prompt again with half the history budget, after a context-length error."""
        budget = self.bot.settings.context_tokens // 2
        logger.warning(
            "bot %s: the prompt was too long for the model; retrying with %d tokens of context",
            self.bot.name,
            budget,
        )
        return self.composer.compose(
            prompt.message,
            prompt.history,
            context_tokens=budget,
            faq=prompt.faq,
            instructions=prompt.instructions,
        )

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

    def _fallback(self, message: IncomingMessage) -> Completion:
        return Completion(text=self._render("fallback", message), model="faq", kind="fallback")

    # --- handing off -------------------------------------------------------------------

    def _handoff_snippet(self, prompt: Prompt) -> FaqSnippet | None:
        """A `handoff: true` snippet that is the best match (at least `faq_min_score`)."""
        if self.handoffs is None or not prompt.faq or not prompt.faq[0].snippet.handoff:
            return None
        return prompt.faq[0].snippet

    def _handoff_trigger(
        self, completion: Completion, history: Sequence[Turn], *, shown: bool
    ) -> str | None:
        """What hands the conversation off after an answer: the model calling the handoff
        tool, or the Nth fallback in a row (fallbacks are never shown before this)."""
        handoff = self.bot.settings.handoff
        if self.handoffs is None or handoff is None:
            return None
        if completion.handoff_reason is not None:
            return "tool"
        if handoff.after_fallbacks and completion.kind == "fallback" and not shown:
            in_a_row = 1
            for turn in reversed(history):
                if turn.role == "user":
                    continue
                if turn.kind != "fallback":
                    break
                in_a_row += 1
            if in_a_row >= handoff.after_fallbacks:
                return "fallbacks"
        return None

    async def _hand_off(
        self,
        message: IncomingMessage,
        history: Sequence[Turn],
        address: dict[str, Any],
        lease: Lease,
        trigger: str,
        reason: str,
        *,
        said: str = "",
    ) -> Reply:
        """Give the conversation to people; the customer is told so, once, after what the
        model `said` before it asked for a person. A bot without a `[handoff]` table
        answers `/human` with its fallback text (which offers contact)."""
        if self.handoffs is None:
            reply = self._reply(message, self._render("fallback", message), "fallback")
        else:
            handoff = await self.handoffs.start(
                message, trigger=trigger, reason=reason, address=address, history=history
            )
            notice = self._render("handoff", message)
            text = f"{said}\n\n{notice}" if said else notice
            reply = self._reply(message, text, "handoff", handoff=handoff.id)
        await self._store_answer(message, reply, lease)
        return reply

    # --- replies -----------------------------------------------------------------------

    def _render(self, name: str, message: IncomingMessage) -> str:
        """A message template; when it fails at run time (logged), the built-in one."""
        return self.bot.templates.render_or_default(name, self.composer.context(message))

    def _reply(self, message: IncomingMessage, text: str, kind: ReplyKind, **fields: Any) -> Reply:
        return Reply(
            text=text,
            conversation_id=message.conversation_id,
            kind=kind,
            in_reply_to=message.message_id,
            **fields,
        )

    def _cut(self, message: IncomingMessage, text: str) -> tuple[IncomingMessage, str]:
        """The message as the bot keeps it, and the notice it was cut: its stripped `text`
        redacted (before it is stored, sent to the model or relayed to people) and cut to
        the size limit, with an id if its channel gave none (outcomes and votes name it)."""
        if self._redact:
            text = self._redact(text)
        limit = self.bot.settings.max_message_chars
        notice = ""
        if len(text) > limit:
            text = text[:limit]
            notice = f"\n\n(Your message was long, so I read only its first {limit} characters.)"
        if text != message.text:
            message = dataclasses.replace(message, text=text)
        if message.message_id is None:
            message = dataclasses.replace(message, message_id=f"m_{secrets.token_urlsafe(9)}")
        return message, notice

    def _done(self, message: IncomingMessage, reply: Reply, started: float) -> Reply:
        elapsed = time.perf_counter() - started
        for listener in self.listeners:
            listener(message, reply, elapsed)
        return reply


def _earlier(
    history: list[Turn], message: IncomingMessage, item: InboxItem | None
) -> tuple[Turn | None, Turn | None]:
    """For a message from the inbox: its turn and its answer if they are stored already.

    Whoever handled it before (a worker that died, or one that stalled past its lease
    while another took the message over) may have stored them; then the history loses
    them, so the prompt is composed from the turns before the message. Only inbox items
    are looked for: their ids are the platform's, never reused in a conversation.
    """
    if item is None or message.message_id is None:
        return None, None
    for index in range(len(history) - 1, -1, -1):
        turn = history[index]
        if turn.role == "user" and turn.id == message.message_id:
            answer = next(
                (t for t in history[index + 1 :] if t.reply_to == message.message_id), None
            )
            del history[index:]
            return turn, answer
    return None, None


class ReplyStream:
    """The answer to one message as it is generated.

        stream = pipeline.stream(message)
        if await stream.begin():     # optional: True when the bot answers (show "typing…")
            ...
        async for delta in stream:   # text deltas, in order
            ...
        stream.reply                 # the whole Reply (None for an empty message)

    Joined, the deltas are exactly `reply.text`. A message relayed to the person
    handling the conversation has no deltas, and a reply of kind "relayed".
    """

    def __init__(self, source: AsyncIterator[str | Reply | Begin]) -> None:
        self._source = source
        self._begun: bool | None = None
        self.reply: Reply | None = None

    async def begin(self) -> bool:
        """Wait until the pipeline knows whether the bot answers; False for an empty or a
        relayed message."""
        if self._begun is None:
            async for item in self._source:
                if isinstance(item, Begin):
                    self._begun = item.answering
                    break
                if isinstance(item, Reply):  # nothing to answer
                    self.reply = item
                    break
            else:
                self._begun = False
        return bool(self._begun)

    async def __aiter__(self) -> AsyncIterator[str]:
        if self._begun is None:
            await self.begin()
        async for item in self._source:
            if isinstance(item, Reply):
                self.reply = item
            elif isinstance(item, str):
                yield item


def inbox_channel(channel: str, bot: str) -> str:
    """The inbox's name for work only a worker serving this bot on this channel can do."""
    return f"{channel}/{bot}"


def parse_command(text: str) -> str | None:
    """`/reset`, `/Reset` and `/reset@SomeBot` are the command `/reset`; other text is not."""
    if not text.startswith("/"):
        return None
    word = text.split(maxsplit=1)[0].split("@", 1)[0].lower()
    return word if word in COMMANDS else None


__all__ = [
    "COMMANDS",
    "DEFAULTS",
    "Begin",
    "Pipeline",
    "CompletionListener",
    "ReplyListener",
    "ReplyStream",
    "inbox_channel",
    "parse_command",
]
