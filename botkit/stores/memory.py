"""A store that lives and dies with the process: for tests and throwaway bots."""

from __future__ import annotations

import copy
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from botkit.messages import Turn
from botkit.stores.base import Store, UsageRecord, UsageTotal


class MemoryStore(Store):
    """Conversations and records in dicts; nothing survives a restart."""

    def __init__(self) -> None:
        self._turns: defaultdict[str, list[Turn]] = defaultdict(list)
        self._records: dict[str, tuple[dict[str, Any], float | None]] = {}
        self._usage: defaultdict[tuple[str, str, str, str, str], list[int]] = defaultdict(
            lambda: [0, 0]
        )

    async def recent(self, key: str, limit: int) -> list[Turn]:
        if limit <= 0 or key not in self._turns:
            return []
        return self._turns[key][-limit:]

    async def append(self, key: str, turns: Sequence[Turn]) -> None:
        self._turns[key].extend(turns)

    async def reset(self, key: str) -> None:
        self._turns.pop(key, None)

    async def get_record(self, key: str) -> dict[str, Any] | None:
        entry = self._records.get(key)
        if entry is None or _expired(entry[1]):
            return None
        return copy.deepcopy(entry[0])

    async def put_record(
        self, key: str, value: dict[str, Any], *, ttl: float | None = None
    ) -> None:
        self._records[key] = (copy.deepcopy(value), None if ttl is None else time.time() + ttl)

    async def delete_record(self, key: str) -> bool:
        entry = self._records.pop(key, None)
        return entry is not None and not _expired(entry[1])

    async def claim(self, key: str, *, ttl: float) -> bool:
        if await self.get_record(key) is not None:
            return False
        await self.put_record(key, {}, ttl=ttl)
        return True

    async def add_usage(self, records: Sequence[UsageRecord]) -> None:
        for r in records:
            totals = self._usage[(r.day, r.bot, r.user, r.conversation, r.model)]
            totals[0] += r.prompt_tokens
            totals[1] += r.completion_tokens

    async def usage_totals(self, *, since: str, bot: str | None = None) -> list[UsageTotal]:
        sums: defaultdict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for (day, bot_, _, _, model), (prompt, completion) in self._usage.items():
            if day >= since and bot in (None, bot_):
                sums[(day, bot_, model)][0] += prompt
                sums[(day, bot_, model)][1] += completion
        return [UsageTotal(*key, *sums[key]) for key in sorted(sums)]

    async def tokens_used(self, *, day: str, bot: str, user: str | None = None) -> int:
        return sum(
            prompt + completion
            for (day_, bot_, user_, _, _), (prompt, completion) in self._usage.items()
            if (day_, bot_) == (day, bot) and user in (None, user_)
        )


def _expired(expires: float | None) -> bool:
    return expires is not None and expires <= time.time()
