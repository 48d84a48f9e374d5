"""A store that lives and dies with the process: for tests and throwaway bots."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from botkit.messages import Turn
from botkit.stores.base import ConversationStore


class MemoryStore(ConversationStore):
    """Conversations in a dict; nothing survives a restart."""

    def __init__(self) -> None:
        self._turns: defaultdict[str, list[Turn]] = defaultdict(list)

    async def recent(self, key: str, limit: int) -> list[Turn]:
        if limit <= 0 or key not in self._turns:
            return []
        return self._turns[key][-limit:]

    async def append(self, key: str, turns: Sequence[Turn]) -> None:
        self._turns[key].extend(turns)

    async def reset(self, key: str) -> None:
        self._turns.pop(key, None)
