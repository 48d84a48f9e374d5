"""Composing the `messages` array: system prompt, the history that fits, the question.

Template context (bot authors rely on these exact names):

    bot.name, bot.description
    user.id, user.name, user.language (None when the channel does not say)
    channel   "telegram", "slack", "web", "console"
    now       the current time, a timezone-aware datetime (UTC)
    faq       the snippets chosen for this question, best first; each has
              .question, .questions, .answer, .tags, .source
    vars      the `[vars]` table of bots/NAME.toml
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botkit.errors import ConfigError, Problem
from botkit.messages import IncomingMessage, Turn
from botkit.prompting.faq import FaqSnippet
from botkit.prompting.retrieval import FaqMatch
from botkit.prompting.templates import DEFAULTS
from botkit.prompting.tokens import count_message_tokens

if TYPE_CHECKING:
    from botkit.home import BotDefinition


@dataclass(frozen=True, slots=True)
class BotInfo:
    name: str
    description: str
    handoff: bool = False
    """Whether the bot can hand a conversation over to a person (`/human`)."""


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """The person who took a conversation over, for the handoff templates."""

    name: str | None


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: str
    name: str | None
    language: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Prompt:
    """One request's worth of prompt: the messages and what went into them."""

    message: IncomingMessage
    history: Sequence[Turn]
    """All the history that was loaded, before trimming (to compose again, tighter)."""
    messages: list[dict[str, str]]
    faq: list[FaqMatch]
    context: dict[str, Any]
    tokens: int
    """The estimated size of `messages`."""
    question_tokens: int
    history_dropped: int = 0
    instructions: str = ""
    """A caller's own instructions, after the bot's system prompt (chat completions)."""


class PromptComposer:
    """Builds prompts for one bot from its templates, FAQ index and settings."""

    def __init__(self, bot: BotDefinition) -> None:
        self.bot = bot
        self._info = BotInfo(bot.name, bot.description, bot.settings.handoff is not None)

    def context(self, message: IncomingMessage, faq: Sequence[FaqSnippet] = ()) -> dict[str, Any]:
        return {
            "bot": self._info,
            "user": UserInfo(message.user_id, message.user_name, message.user_language),
            "channel": message.channel,
            "now": datetime.now(UTC),
            "faq": list(faq),
            "vars": self.bot.settings.vars,
        }

    def render(self, name: str, message: IncomingMessage, **extra: Any) -> str:
        """Render a message template (welcome, help, fallback, reset, unsupported, handoff…)
        for this user; `extra` adds to the context (`agent` for the handoff templates)."""
        return self.bot.templates.render(name, self.context(message) | extra)

    def compose(
        self,
        message: IncomingMessage,
        history: Sequence[Turn],
        *,
        context_tokens: int | None = None,
        faq: Sequence[FaqMatch] | None = None,
        instructions: str = "",
    ) -> Prompt:
        """`[system, …history, user]`, dropping the oldest history that does not fit.

        The budget is the context size (the bot's `context_tokens` unless a
        tighter one is given) minus `max_tokens` kept free for the answer. The
        system prompt and the question are never dropped. `faq` replaces the search
        of the bot's FAQ (ranked elsewhere, with documents of the caller's);
        `instructions` follow the bot's system prompt, in the same system message.
        """
        settings = self.bot.settings
        if faq is None:
            matches = self.bot.faq.search(
                message.text,
                top_k=max(settings.faq_top_k, 1),
                min_confidence=settings.faq_min_score,
            )
        else:
            matches = list(faq)
        shown = [m.snippet for m in matches[: settings.faq_top_k]]
        context = self.context(message, shown)
        system = self.bot.templates.render("system", context)
        if instructions:
            system = f"{system}\n\n{instructions}"
        question_tokens = count_message_tokens(message.text)

        budget = (context_tokens or settings.context_tokens) - settings.max_tokens
        used = count_message_tokens(system) + question_tokens
        keep = 0
        for turn in reversed(history):
            if used + turn.tokens > budget:
                break
            used += turn.tokens
            keep += 1
        kept = history[len(history) - keep :]
        if kept and kept[0].role != "user":  # its question was dropped: drop the answer too
            kept = kept[1:]

        messages = [{"role": "system", "content": system}]
        # What a person wrote is the assistant's side of the conversation to the model.
        messages.extend(
            {"role": "user" if t.role == "user" else "assistant", "content": t.content}
            for t in kept
        )
        messages.append({"role": "user", "content": message.text})
        return Prompt(
            message=message,
            history=history,
            messages=messages,
            faq=matches,
            context=context,
            tokens=used,
            question_tokens=question_tokens,
            history_dropped=len(history) - len(kept),
            instructions=instructions,
        )

    def check(self) -> list[Problem]:
        """Render every template with sample contexts, as `botkit check` does."""
        samples = [
            IncomingMessage(
                channel="console",
                bot=self.bot.name,
                conversation_id="check",
                user_id="check-user",
                user_name="Alex",
                user_language="en",
                text="hello",
            ),
            IncomingMessage(
                channel="web",
                bot=self.bot.name,
                conversation_id="check",
                user_id="check-user",
                text="hello",
            ),
        ]
        snippet_sets = [self.bot.faq.snippets[: max(self.bot.settings.faq_top_k, 1)], []]
        problems: dict[str, Problem] = {}
        for sample, snippets in zip(samples, snippet_sets, strict=True):
            context = self.context(sample, snippets) | {"agent": AgentInfo("Anna")}
            for name in ("system", *DEFAULTS):
                try:
                    self.bot.templates.render(name, context)
                except ConfigError as err:
                    problems.update((str(p), p) for p in err.problems)
        return list(problems.values())
