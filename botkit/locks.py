"""Per-conversation ordering: one conversation's messages are answered one at a time."""

from __future__ import annotations

import asyncio
from types import TracebackType


class ConversationLocks:
    """A lock per conversation key, forgotten once nobody holds or awaits it.

    Different conversations never wait for each other, and an idle process
    keeps no lock for the thousands of users it has seen.
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Held] = {}

    def hold(self, key: str) -> _Held:
        """`async with locks.hold(key):` runs the block alone for that conversation."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Held(self._entries, key)
        return entry

    def __len__(self) -> int:
        return len(self._entries)


class _Held:
    """One conversation's lock and how many are holding or awaiting it.

    A plain context manager, not `@asynccontextmanager`: this runs for every message.
    """

    __slots__ = ("_entries", "_key", "_lock", "_holders")

    def __init__(self, entries: dict[str, _Held], key: str) -> None:
        self._entries = entries
        self._key = key
        self._lock = asyncio.Lock()
        self._holders = 0

    async def __aenter__(self) -> None:
        self._holders += 1
        try:
            await self._lock.acquire()
        except BaseException:
            self._release_entry()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()
        self._release_entry()

    def _release_entry(self) -> None:
        self._holders -= 1
        if self._holders == 0:
            del self._entries[self._key]
