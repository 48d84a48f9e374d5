"""The responder interface the pipeline asks for a completion."""

from __future__ import annotations

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


class Responder(Protocol):
    """Anything that answers a composed prompt."""

    async def complete(self, prompt: Prompt) -> Completion: ...
