"""Fakes for testing bots (botkit's own tests use them too).

home = write_bot(tmp_path, "shop", faq={"hours.md": faq_file("When are you open?", "9–5")})
bot = BotHome(tmp_path).load_checked("shop")
pipeline = Pipeline(bot=bot, store=MemoryStore(), responder=FaqResponder(bot))
chat = FakeChannel(pipeline.handle, bot="shop")
assert "9–5" in (await chat.say("what are your hours?")).text
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from botkit.adapters import Handler
from botkit.messages import Handoff, IncomingMessage, Reply, Turn

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
        return replace(self._template, **({"text": text, "message_id": str(self._count)} | fields))

    async def say(self, text: str, **fields: Any) -> Reply | None:
        """Send one message as this user; `fields` override the message's other fields."""
        reply = await self._handler(self.message(text, **fields))
        if reply is not None:
            self.replies.append(reply)
        return reply


class FakeDesk:
    """A desk for tests: hand it to `BotApp(desks={"shop": desk})` and read what people
    would see in `shown` (new handoffs with their transcripts), `relayed` (what customers
    wrote), `changes` (taken, resolved…) and `failures` (deliveries that failed)."""

    def __init__(self) -> None:
        self.shown: list[tuple[Handoff, list[Turn]]] = []
        self.relayed: list[tuple[str, str]] = []
        self.changes: list[Handoff] = []
        self.failures: list[tuple[str, str]] = []

    async def requested(self, handoff: Handoff, transcript: Sequence[Turn]) -> str | None:
        self.shown.append((handoff, list(transcript)))
        return f"fake/{handoff.id}"

    async def customer_message(self, handoff: Handoff, text: str) -> None:
        self.relayed.append((handoff.id, text))

    async def changed(self, handoff: Handoff) -> None:
        self.changes.append(handoff)

    async def delivery_failed(self, handoff: Handoff, reason: str) -> None:
        self.failures.append((handoff.id, reason))


def faq_file(
    question: str,
    answer: str,
    *,
    questions: Iterable[str] = (),
    tags: Iterable[str] = (),
    handoff: bool = False,
) -> str:
    """The text of one FAQ snippet file."""
    lines = ["---", f"question: {question}"]
    if questions := list(questions):
        lines += ["questions:", *(f"  - {q}" for q in questions)]
    if tags := list(tags):
        lines.append(f"tags: [{', '.join(tags)}]")
    if handoff:
        lines.append("handoff: true")
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


class FakeLLM:
    """A fake OpenAI-compatible API on `httpx.MockTransport`: hand `.transport` to
    `BotApp(transport=...)` or `CompletionClient(transport=...)`.

    It answers every chat completion with `answer` (a string, or a function of the
    request body), streamed when asked, and keeps every request body in `requests`.
    """

    def __init__(
        self, answer: str | Callable[[dict[str, Any]], str] = "Hello from the model."
    ) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": "fake-model"}]})
        body = json.loads(request.content)
        self.requests.append(body)
        text = self.answer(body) if callable(self.answer) else self.answer
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if not body.get("stream"):
            return httpx.Response(
                200,
                json={
                    "id": "fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                    "usage": usage,
                },
            )
        chunks: list[dict[str, Any]] = [
            {"choices": [{"index": 0, "delta": {"content": text[i : i + 8]}}]}
            for i in range(0, len(text), 8)
        ]
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        chunks.append({"choices": [], "usage": usage})
        events = "".join(
            f"data: {json.dumps({'id': 'fake', 'model': body['model'], **c})}\n\n" for c in chunks
        )
        return httpx.Response(
            200, text=events + "data: [DONE]\n\n", headers={"content-type": "text/event-stream"}
        )
