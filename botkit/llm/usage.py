"""Counting tokens per bot, user, conversation and day, and what they cost."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from botkit.batches import Batches
from botkit.settings import Price
from botkit.stores.base import UsageLedger, UsageRecord, UsageTotal


def today() -> str:
    """The current day in UTC, as the ledger keys it (worked out once a day: formatting a
    date costs more than the rest of recording a call's usage)."""
    now = time.time()
    if now >= _today[1]:
        start = now - now % 86400
        _today[:] = [time.strftime("%Y-%m-%d", time.gmtime(start)), start + 86400]
    return str(_today[0])


_today: list[Any] = ["", 0.0]
"""The day string, and when it stops being today."""


class UsageMeter(Batches[tuple[str, str, str, str, str], UsageRecord]):
    """Adds each call's tokens to the store's ledger, in batches.

    Writing once a second instead of once a call keeps the store off the
    message path; `aclose` writes what is left.
    """

    lost = "could not write token usage; it is lost for this second"

    def __init__(self, ledger: UsageLedger, *, flush_seconds: float = 1.0) -> None:
        super().__init__(flush_seconds=flush_seconds)
        self._ledger = ledger

    def add(self, record: UsageRecord) -> None:
        key = (record.day, record.bot, record.user, record.conversation, record.model)
        if (earlier := self._pending.get(key)) is not None:
            record = replace(
                record,
                prompt_tokens=earlier.prompt_tokens + record.prompt_tokens,
                completion_tokens=earlier.completion_tokens + record.completion_tokens,
            )
        self._keep(key, record)

    async def used_today(self, bot: str, user: str | None = None) -> int:
        """Tokens a bot (or one of its users) spent today, written or not."""
        day = today()
        pending = sum(
            r.prompt_tokens + r.completion_tokens
            for r in self._pending.values()
            if (r.day, r.bot) == (day, bot) and user in (None, r.user)
        )
        return pending + await self._ledger.tokens_used(day=day, bot=bot, user=user)

    async def _write(self, entries: Sequence[UsageRecord]) -> None:
        await self._ledger.add_usage(entries)


def cost(total: UsageTotal, prices: Mapping[str, Price]) -> float | None:
    """What a day's tokens cost, or None when the model has no price."""
    price = prices.get(total.model)
    if price is None:
        return None
    return (total.prompt_tokens * price.input + total.completion_tokens * price.output) / 1e6
