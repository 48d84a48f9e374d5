"""Counting tokens per bot, user, conversation and day, and what they cost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from botkit.settings import Price
from botkit.stores.base import UsageLedger, UsageRecord, UsageTotal

logger = logging.getLogger(__name__)


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


class UsageMeter:
    """Adds each call's tokens to the store's ledger, in batches.

    Writing once a second instead of once a call keeps the store off the
    message path; `aclose` writes what is left.
    """

    def __init__(self, ledger: UsageLedger, *, flush_seconds: float = 1.0) -> None:
        self._ledger = ledger
        self._flush_seconds = flush_seconds
        self._pending: dict[tuple[str, str, str, str, str], UsageRecord] = {}
        self._flusher: asyncio.Task[None] | None = None

    def add(self, record: UsageRecord) -> None:
        key = (record.day, record.bot, record.user, record.conversation, record.model)
        if (earlier := self._pending.get(key)) is not None:
            record = replace(
                record,
                prompt_tokens=earlier.prompt_tokens + record.prompt_tokens,
                completion_tokens=earlier.completion_tokens + record.completion_tokens,
            )
        self._pending[key] = record
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())

    async def used_today(self, bot: str, user: str | None = None) -> int:
        """Tokens a bot (or one of its users) spent today, written or not."""
        day = today()
        pending = sum(
            r.prompt_tokens + r.completion_tokens
            for r in self._pending.values()
            if (r.day, r.bot) == (day, bot) and user in (None, r.user)
        )
        return pending + await self._ledger.tokens_used(day=day, bot=bot, user=user)

    async def flush(self) -> None:
        records, self._pending = list(self._pending.values()), {}
        if records:
            await self._ledger.add_usage(records)

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._flush_seconds)
        try:
            await self.flush()
        except Exception:
            logger.exception("could not write token usage; it is lost for this second")


def cost(total: UsageTotal, prices: Mapping[str, Price]) -> float | None:
    """What a day's tokens cost, or None when the model has no price."""
    price = prices.get(total.model)
    if price is None:
        return None
    return (total.prompt_tokens * price.input + total.completion_tokens * price.output) / 1e6
