"""The whole flow of botkit: an incoming message in, a reply out.

    incoming message → load the conversation → compose the prompt
    → get a completion → append both turns → reply

One conversation's messages are handled strictly in order; different
conversations run concurrently.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from botkit.home import BotDefinition
from botkit.llm.base import Completion, Responder
from botkit.llm.offline import FaqResponder
from botkit.locks import ConversationLocks
from botkit.messages import IncomingMessage, Reply, Turn
from botkit.prompting.composer import Prompt, PromptComposer
from botkit.prompting.tokens import count_message_tokens
from botkit.stores.base import ConversationStore

logger = logging.getLogger(__name__)

COMMANDS = ("/start", "/help", "/reset")


class Pipeline:
    """One bot's message path, built from the parts it is handed."""

    def __init__(
        self, *, bot: BotDefinition, store: ConversationStore, responder: Responder
    ) -> None:
        self.bot = bot
        self.store = store
        self.responder = responder
        self.composer = PromptComposer(bot)
        self._offline = FaqResponder(bot)
        self._locks = ConversationLocks()

    async def handle(self, message: IncomingMessage) -> Reply | None:
        """Answer one message; `None` for an empty one, which never reaches the model."""
        text = message.text.strip()
        if not text:
            return None
        if (command := parse_command(text)) is not None:
            return await self._command(command, message)
        message, notice = self._cut(dataclasses.replace(message, text=text))
        key = message.conversation_key
        settings = self.bot.settings
        async with self._locks.hold(key):
            history = await self.store.load(
                key, limit=settings.history_turns, idle_reset=settings.idle_reset
            )
            prompt = self.composer.compose(message, history)
            completion = await self._complete(prompt)
            now = time.time()
            await self.store.append(
                key,
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
        )

    async def _complete(self, prompt: Prompt) -> Completion:
        try:
            return await self.responder.complete(prompt)
        except Exception:
            # The user still gets an answer, and their message is still stored.
            logger.exception("bot %s: the responder failed; answering from the FAQ", self.bot.name)
            return self._offline.answer(prompt)

    async def _command(self, command: str, message: IncomingMessage) -> Reply:
        if command == "/reset":
            await self.store.reset(message.conversation_key)
        template = {"/start": "welcome", "/help": "help", "/reset": "reset"}[command]
        return Reply(
            text=self.composer.render(template, message),
            conversation_id=message.conversation_id,
            kind="command",
            in_reply_to=message.message_id,
        )

    def _cut(self, message: IncomingMessage) -> tuple[IncomingMessage, str]:
        limit = self.bot.settings.max_message_chars
        if len(message.text) <= limit:
            return message, ""
        notice = f"\n\n(Your message was long, so I read only its first {limit} characters.)"
        return dataclasses.replace(message, text=message.text[:limit]), notice


def parse_command(text: str) -> str | None:
    """`/reset`, `/Reset` and `/reset@SomeBot` are the command `/reset`; other text is not."""
    if not text.startswith("/"):
        return None
    word = text.split(maxsplit=1)[0].split("@", 1)[0].lower()
    return word if word in COMMANDS else None
