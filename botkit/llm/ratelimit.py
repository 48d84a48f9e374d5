"""Client-side rate limits: requests and tokens per minute, so that a burst of users
queues politely instead of hammering the API into 429s.

A request takes its estimated tokens (prompt estimate + max_tokens) up front; once
the API reports the real usage, the difference is charged or given back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """Holds up to `per_minute` units and refills at `per_minute` a minute.

    Waiters are served in arrival order. A charge after the fact may drive the
    level below zero: later takers then wait for the debt too.
    """

    def __init__(self, per_minute: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._level = self.capacity
        self._updated = clock()
        self._turn = asyncio.Lock()

    async def take(self, amount: float) -> None:
        amount = min(amount, self.capacity)  # a request larger than a minute's budget still runs
        async with self._turn:
            self._refill()
            if self._level < amount:
                await asyncio.sleep((amount - self._level) / self._rate)
                self._refill()
            self._level -= amount

    def charge(self, amount: float) -> None:
        """Take (or, when negative, give back) units without waiting."""
        self._refill()
        self._level = min(self.capacity, self._level - amount)

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._updated) * self._rate)
        self._updated = now


class RateLimit:
    """Requests-per-minute and tokens-per-minute budgets of one API endpoint."""

    def __init__(
        self, *, requests_per_minute: int | None = None, tokens_per_minute: int | None = None
    ) -> None:
        self._requests = TokenBucket(requests_per_minute) if requests_per_minute else None
        self._tokens = TokenBucket(tokens_per_minute) if tokens_per_minute else None

    async def take(self, estimated_tokens: int) -> None:
        if self._requests is not None:
            await self._requests.take(1)
        if self._tokens is not None:
            await self._tokens.take(estimated_tokens)

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        if self._tokens is not None:
            self._tokens.charge(actual_tokens - estimated_tokens)
