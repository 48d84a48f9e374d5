"""The offline responder: answers from the FAQ alone, so a bot works with no API key."""

from __future__ import annotations

from collections.abc import AsyncIterator

from botkit.home import BotDefinition
from botkit.llm.base import Completion
from botkit.prompting.composer import Prompt


class FaqResponder:
    """The best-matching FAQ answer when it matches well enough, else the fallback text."""

    def __init__(self, bot: BotDefinition) -> None:
        self._bot = bot

    async def complete(self, prompt: Prompt) -> Completion:
        return self.answer(prompt)

    async def stream(self, prompt: Prompt) -> AsyncIterator[str | Completion]:
        # The whole answer at once, as its Completion: the pipeline shows its text.
        yield self.answer(prompt)

    def answer(self, prompt: Prompt) -> Completion:
        if prompt.faq and prompt.faq[0].confidence >= self._bot.settings.faq_answer_score:
            return Completion(text=prompt.faq[0].snippet.answer, model="faq")
        return Completion(
            text=self._bot.templates.render_or_default("fallback", prompt.context),
            model="faq",
            kind="fallback",
        )
