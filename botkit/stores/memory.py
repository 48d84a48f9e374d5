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

from botkit.messages import Feedback, Handoff, Outcome, Turn
from botkit.stores.base import (
    INBOX_TOPIC,
    InboxItem,
    Lease,
    Store,
    UsageRecord,
    UsageTotal,
    Wanted,
    gcra,
    in_order,
    within_tokens,
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
        # conversation → message id → its outcome, or the vote on its answer
        self._outcomes: defaultdict[str, dict[str, Outcome]] = defaultdict(dict)
        self._feedback: defaultdict[str, dict[str, Feedback]] = defaultdict(dict)

    async def recent(self, key: str, limit: int, *, max_tokens: int | None = None) -> list[Turn]:
        if limit <= 0 or key not in self._turns:
            return []
        turns = self._turns[key][-limit:]
        return turns[len(turns) - within_tokens(turns[::-1], max_tokens) :]

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

    async def _renew_items(self, items: Sequence[InboxItem]) -> set[str]:
        return {item.id for item in items}  # nothing else can take them

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

    async def add_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        for outcome in outcomes:
            self._outcomes[outcome.conversation][outcome.message_id] = outcome

    async def outcomes(
        self,
        *,
        bot: str | None = None,
        since: float | None = None,
        until: float | None = None,
        user: str | None = None,
        conversation: str | None = None,
    ) -> list[Outcome]:
        wanted = Wanted(bot, since, until, user, conversation)
        found = [o for c in self._outcomes.values() for o in c.values() if wanted(o)]
        return in_order(found)

    async def put_feedback(self, feedback: Feedback) -> None:
        self._feedback[feedback.conversation][feedback.message_id] = feedback

    async def feedback(
        self,
        *,
        bot: str | None = None,
        since: float | None = None,
        until: float | None = None,
        user: str | None = None,
        conversation: str | None = None,
    ) -> list[Feedback]:
        wanted = Wanted(bot, since, until, user, conversation)
        found = [f for c in self._feedback.values() for f in c.values() if wanted(f)]
        return in_order(found)

    async def idle_conversations(self, *, bot: str, before: float) -> list[str]:
        newest: dict[str, float] = {}
        for conversation, outcomes in self._outcomes.items():
            for o in outcomes.values():
                if o.bot == bot:
                    newest[conversation] = max(newest.get(conversation, 0.0), o.at)
        return sorted(c for c, at in newest.items() if at < before)

    async def erase(
        self, conversation: str, *, user: str | None = None, messages: Sequence[str] = ()
    ) -> list[str]:
        if user is None:
            self._turns.pop(conversation, None)
            self._offsets.pop(conversation, None)
            self._outcomes.pop(conversation, None)
            self._feedback.pop(conversation, None)
            gone = [i for i, h in self._handoffs.items() if h.conversation == conversation]
        else:
            ids = set(messages)
            turns = self._turns.get(conversation, [])
            kept = [t for t in turns if t.id not in ids and t.reply_to not in ids]
            if len(kept) < len(turns):  # cursors count forgotten turns, as after a reset
                self._turns[conversation] = kept
                self._offsets[conversation] = (
                    self._offsets.get(conversation, 0) + len(turns) - len(kept)
                )
            for message_id in ids:
                self._outcomes.get(conversation, {}).pop(message_id, None)
            votes = self._feedback.get(conversation, {})
            for message_id in [m for m, f in votes.items() if m in ids or f.user == user]:
                del votes[message_id]
            gone = [
                i
                for i, h in self._handoffs.items()
                if h.conversation == conversation and h.user_id == user
            ]
        for handoff_id in gone:
            del self._handoffs[handoff_id]
        return gone

    async def erase_usage(self, *, user: str, bot: str | None = None) -> int:
        if not user:  # "" is the anonymous row itself
            return 0
        named = [k for k in self._usage if k[2] == user and bot in (None, k[1])]
        for key in named:
            day, bot_, _, _, model = key
            prompt, completion = self._usage.pop(key)
            anonymous = self._usage[(day, bot_, "", "", model)]
            anonymous[0] += prompt
            anonymous[1] += completion
        return len(named)


def _expired(expires: float | None) -> bool:
    return expires is not None and expires <= time.time()
