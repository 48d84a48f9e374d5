"""Client-side rate limits: requests and tokens per minute, so that a burst of users
queues politely instead of hammering the API into 429s.

The budgets live in the store (`RateCounter`, a generic cell rate algorithm), so
every worker sharing it shares them: N workers send what one would. A request
reserves its estimated tokens (prompt estimate + max_tokens) before it is sent
and waits out the reservation; once the API reports the real usage the
difference is charged or given back. A request larger than a minute's budget
waits its full share instead of slipping through.
"""

from __future__ import annotations

import asyncio

from botkit.stores.base import RateCounter

_NO_LIMIT = float("inf")


class RateLimit:
    """The requests-per-minute and tokens-per-minute budgets of one API endpoint, under
    `key` in a shared counter."""

    def __init__(
        self,
        counter: RateCounter,
        *,
        key: str,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
    ) -> None:
        self._counter = counter
        self._requests = requests_per_minute
        self._tokens = tokens_per_minute
        self._request_key = f"llm:{key}:requests"
        self._token_key = f"llm:{key}:tokens"

    async def take(self, estimated_tokens: int) -> None:
        """Wait until a request of `estimated_tokens` may be sent."""
        wait = 0.0
        if self._requests:
            wait = await self._reserve(self._request_key, 1, self._requests)
        if self._tokens and estimated_tokens > 0:
            wait = max(wait, await self._reserve(self._token_key, estimated_tokens, self._tokens))
        if wait > 0:
            await asyncio.sleep(wait)

    async def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Charge (or give back) what the request really cost beyond its estimate."""
        if self._tokens and actual_tokens != estimated_tokens:
            await self._reserve(self._token_key, actual_tokens - estimated_tokens, self._tokens)

    async def _reserve(self, key: str, cost: float, per_minute: int) -> float:
        return await self._counter.take_rate(
            key, cost, rate=per_minute / 60.0, burst=per_minute, max_wait=_NO_LIMIT
        )
