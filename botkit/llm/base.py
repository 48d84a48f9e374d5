"""The responder interface the pipeline asks for a completion."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from botkit.messages import ReplyKind, Usage
from botkit.prompting.composer import Prompt


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    """The assistant's answer to one prompt."""

    text: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    kind: ReplyKind = "answer"
    error: str | None = None
    handoff_reason: str | None = None
    """Set when the model called the `handoff` tool: why it wants a person to take over."""


class Responder(Protocol):
    """Anything that answers a composed prompt, whole or as it is generated."""

    async def complete(self, prompt: Prompt) -> Completion: ...

    def stream(self, prompt: Prompt) -> AsyncIterator[str | Completion]:
        """Text deltas as they arrive (none, when the answer comes whole), then exactly one
        `Completion` with the whole text."""
        ...
