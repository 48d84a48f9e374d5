"""Per-client limits for the public chat page, counted in the shared store."""

from __future__ import annotations

import math
import time

from botkit.adapters.web.protocol import ApiError
from botkit.stores.base import RateCounter


class ClientRateLimit:
    """At most `limit` events per client per `window` seconds, as a steady rate with a
    burst of `limit` (a generic cell rate algorithm: one stored number per client).

    The count lives in the store, so every process sharing it shares the limit, at
    one atomic update per event whatever the traffic; a client already refused is
    refused from memory until it may try again, so a flood costs no store writes.
    """

    def __init__(
        self, counter: RateCounter, *, name: str, limit: int, window: float = 60.0
    ) -> None:
        self._counter = counter
        self._name = name
        self._limit = limit
        self._window = window
        self._refused_until: dict[str, float] = {}

    async def admit(self, client: str) -> None:
        """Count one event for `client`, or raise a 429 telling when to retry."""
        now = time.monotonic()
        until = self._refused_until.get(client, 0.0)
        if until > now:
            self._refuse(until - now)
        wait = await self._counter.take_rate(
            f"web:rate:{self._name}:{client}",
            1,
            rate=self._limit / self._window,
            burst=self._limit,
            max_wait=0,
        )
        if wait > 0:
            self._forget_past(now)
            self._refused_until[client] = now + wait
            self._refuse(wait)

    def _refuse(self, wait: float) -> None:
        retry = max(1, math.ceil(wait))
        raise ApiError(
            429,
            "rate_limited",
            f"too many messages: at most {self._limit} per {self._window:g} s; "
            f"try again in {retry} s",
            headers={"Retry-After": str(retry)},
        )

    def _forget_past(self, now: float) -> None:
        if len(self._refused_until) > 10_000:
            self._refused_until = {c: t for c, t in self._refused_until.items() if t > now}
