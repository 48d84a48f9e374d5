"""Fakes for testing bots (botkit's own tests use them too).

home = write_bot(tmp_path, "shop", faq={"hours.md": faq_file("When are you open?", "9–5")})
bot = BotHome(tmp_path).load_checked("shop")
pipeline = Pipeline(bot=bot, store=MemoryStore(), responder=FaqResponder(bot))
chat = FakeChannel(pipeline.handle, bot="shop")
assert "9–5" in (await chat.say("what are your hours?")).text
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from botkit.adapters import Handler
from botkit.messages import IncomingMessage, Reply

DEFAULT_SYSTEM = """\
{# A test bot #}
You answer questions for {{ bot.name }}.
{% for snippet in faq %}
Q: {{ snippet.question }}
A: {{ snippet.answer }}
{% endfor %}
"""


class FakeChannel:
    """A channel adapter for tests: push text in, read `Reply`s back."""

    def __init__(
        self,
        handler: Handler,
        *,
        bot: str,
        channel: str = "test",
        user_id: str = "user-1",
        conversation_id: str | None = None,
        user_name: str | None = None,
        user_language: str | None = None,
    ) -> None:
        self._handler = handler
        self._template = IncomingMessage(
            channel=channel,
            bot=bot,
            conversation_id=conversation_id or user_id,
            user_id=user_id,
            user_name=user_name,
            user_language=user_language,
            text="",
        )
        self.replies: list[Reply] = []
        self._count = 0

    def message(self, text: str, **fields: Any) -> IncomingMessage:
        self._count += 1
        return replace(self._template, text=text, message_id=str(self._count), **fields)

    async def say(self, text: str, **fields: Any) -> Reply | None:
        """Send one message as this user; `fields` override the message's other fields."""
        reply = await self._handler(self.message(text, **fields))
        if reply is not None:
            self.replies.append(reply)
        return reply


def faq_file(
    question: str, answer: str, *, questions: Iterable[str] = (), tags: Iterable[str] = ()
) -> str:
    """The text of one FAQ snippet file."""
    lines = ["---", f"question: {question}"]
    if questions := list(questions):
        lines += ["questions:", *(f"  - {q}" for q in questions)]
    if tags := list(tags):
        lines.append(f"tags: [{', '.join(tags)}]")
    return "\n".join([*lines, "---", answer, ""])


def write_bot(
    home: Path,
    name: str,
    *,
    system: str = DEFAULT_SYSTEM,
    faq: Mapping[str, str] | None = None,
    settings: str | None = None,
    files: Mapping[str, str] | None = None,
) -> Path:
    """Write `prompts/NAME/` (and `bots/NAME.toml` when `settings` is given); return the folder.

    `faq` maps file names under `faq/` to their text; `files` maps any other
    path in the prompt folder (e.g. "welcome.md.j2") to its text.
    """
    folder = home / "prompts" / name
    (folder / "faq").mkdir(parents=True, exist_ok=True)
    (folder / "system.md.j2").write_text(system, "utf-8")
    for filename, text in (faq or {}).items():
        (folder / "faq" / filename).write_text(text, "utf-8")
    for relative, text in (files or {}).items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    if settings is not None:
        (home / "bots").mkdir(exist_ok=True)
        (home / "bots" / f"{name}.toml").write_text(settings, "utf-8")
    return folder
