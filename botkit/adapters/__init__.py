"""Channel adapters: each turns platform updates into `IncomingMessage`s and posts `Reply`s.

An adapter is handed a `Handler` (usually `Pipeline.handle`), never the bot
itself, and runs until it is cancelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from botkit.messages import IncomingMessage, Reply

Handler = Callable[[IncomingMessage], Awaitable[Reply | None]]


class Adapter(Protocol):
    async def run(self) -> None:
        """Serve until cancelled."""
