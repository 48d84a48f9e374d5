"""A store that lives and dies with the process: for tests and throwaway bots.

Its conversation lock is the process's own queue per conversation (nothing else
can share the store), so it has no lease to renew or fence.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from botkit.messages import Handoff, Turn
from botkit.stores.base import (
    INBOX_TOPIC,
    InboxItem,
    Lease,
    Store,
    UsageRecord,
    UsageTotal,
    gcra,
)

_DEDUPE_SECONDS = 24 * 3600.0


@dataclasses.dataclass(slots=True)
class _Pending:
    item: InboxItem
    expires: float


class MemoryStore(Store):
    """Conversations, records and everything else in dicts; nothing survives a restart."""

    shared = False

    def __init__(self, *, lease: float = 30.0) -> None:
        super().__init__(lease=lease)
        self._turns: defaultdict[str, list[Turn]] = defaultdict(list)
        self._offsets: dict[str, int] = {}  # turns forgotten by a reset, so cursors stay valid
        self._records: dict[str, tuple[dict[str, Any], float | None]] = {}
        self._usage: defaultdict[tuple[str, str, str, str, str], list[int]] = defaultdict(
            lambda: [0, 0]
        )
        self._rates: dict[str, float] = {}
        self._inbox: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._handoffs: dict[str, Handoff] = {}

    async def recent(self, key: str, limit: int) -> list[Turn]:
        if limit <= 0 or key not in self._turns:
            return []
        return self._turns[key][-limit:]

    async def append(self, key: str, turns: Sequence[Turn], *, lease: Lease | None = None) -> None:
        self._turns[key].extend(turns)

    async def reset(self, key: str) -> None:
        removed = self._turns.pop(key, None)
        if removed:
            self._offsets[key] = self._offsets.get(key, 0) + len(removed)

    async def cursor(self, key: str) -> int:
        return self._offsets.get(key, 0) + len(self._turns.get(key, ()))

    async def turns_since(self, key: str, cursor: int) -> tuple[int, list[Turn]]:
        offset = self._offsets.get(key, 0)
        turns = self._turns.get(key, [])
        start = max(cursor - offset, 0)
        return offset + len(turns), list(turns[start:])

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

    async def take_rate(
        self, key: str, cost: float, *, rate: float, burst: float, max_wait: float
    ) -> float:
        now = time.time()
        tat, wait = gcra(self._rates.get(key), now, cost, rate, burst)
        if wait <= max_wait:
            self._rates[key] = tat
        return wait

    async def inbox_add(
        self,
        *,
        channel: str,
        conversation: str,
        payload: dict[str, Any],
        dedupe: str | None = None,
        owned: bool = True,
    ) -> InboxItem | None:
        if dedupe is not None and not await self.claim(f"inbox:{dedupe}", ttl=_DEDUPE_SECONDS):
            return None
        item = InboxItem(str(next(self._ids)), channel, conversation, copy.deepcopy(payload))
        # An owned item stays with this process until done or let go: no other process can
        # take it, and its lease is never renewed, so it must not run out.
        self._inbox[item.id] = _Pending(item, math.inf if owned else 0.0)
        if not owned:
            await self.publish(INBOX_TOPIC)
        return item

    async def inbox_take(self, channels: Sequence[str], *, limit: int = 20) -> list[InboxItem]:
        now = time.time()
        taken: list[InboxItem] = []
        for pending in self._inbox.values():
            if len(taken) == limit:
                break
            if pending.item.channel in channels and pending.expires <= now:
                pending.item = dataclasses.replace(pending.item, attempts=pending.item.attempts + 1)
                pending.expires = math.inf
                taken.append(pending.item)
        return taken

    async def inbox_done(self, item: InboxItem) -> None:
        self._inbox.pop(item.id, None)

    async def inbox_later(self, item: InboxItem, *, delay: float) -> None:
        if (pending := self._inbox.get(item.id)) is not None:
            pending.expires = time.time() + delay

    async def _renew_items(self, items: Sequence[InboxItem]) -> None:
        pass  # nothing else can take them

    async def handoff_open(self, handoff: Handoff) -> Handoff:
        if (current := await self.handoff_current(handoff.conversation)) is not None:
            return current
        self._handoffs[handoff.id] = handoff
        return handoff

    async def handoff_get(self, handoff_id: str) -> Handoff | None:
        return self._handoffs.get(handoff_id)

    async def handoff_current(self, conversation: str) -> Handoff | None:
        return next(
            (h for h in self._handoffs.values() if h.conversation == conversation and h.open),
            None,
        )

    async def handoff_by_desk(self, desk_ref: str) -> Handoff | None:
        return next((h for h in self._handoffs.values() if h.desk_ref == desk_ref), None)

    async def handoff_update(self, handoff: Handoff) -> Handoff | None:
        stored = self._handoffs.get(handoff.id)
        if stored is None or stored.version != handoff.version:
            return None
        updated = dataclasses.replace(handoff, version=handoff.version + 1)
        self._handoffs[handoff.id] = updated
        return updated

    async def handoffs_open(self, bot: str | None = None) -> list[Handoff]:
        found = [h for h in self._handoffs.values() if h.open and bot in (None, h.bot)]
        return sorted(found, key=lambda h: h.created)


def _expired(expires: float | None) -> bool:
    return expires is not None and expires <= time.time()
