"""The conversation store interface: a few async methods every backend implements."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from botkit.messages import Turn


class ConversationStore(ABC):
    """Keeps each conversation's turns, oldest first, under a string key."""

    @abstractmethod
    async def recent(self, key: str, limit: int) -> list[Turn]:
        """The newest `limit` turns of the conversation, oldest first."""

    @abstractmethod
    async def append(self, key: str, turns: Sequence[Turn]) -> None:
        """Add turns at the end, in one write."""

    @abstractmethod
    async def reset(self, key: str) -> None:
        """Forget the conversation."""

    async def aclose(self) -> None:  # noqa: B027 - stores without resources need no close
        """Release connections; the store is unusable afterwards."""

    async def load(self, key: str, *, limit: int, idle_reset: float | None = None) -> list[Turn]:
        """The history to answer from: empty when the conversation sat idle too long."""
        turns = await self.recent(key, limit)
        if turns and idle_reset is not None and time.time() - turns[-1].at > idle_reset:
            await self.reset(key)
            return []
        return turns

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
