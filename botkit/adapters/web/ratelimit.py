"""Per-client limits for the public chat page, counted in the shared store."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from botkit.adapters.web.protocol import ApiError
from botkit.stores.base import RecordStore


class ClientRateLimit:
    """At most `limit` events per client in each fixed window of `window` seconds.

    The count is kept as atomic claims in the store, so every process sharing
    the store shares the limit; a client already refused is refused from
    memory until its window ends, so a flood costs no store writes.
    """

    def __init__(
        self,
        store: RecordStore,
        *,
        name: str,
        limit: int,
        window: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._name = name
        self._limit = limit
        self._window = window
        self._clock = clock
        self._refused_until: dict[str, float] = {}

    async def admit(self, client: str) -> None:
        """Count one event for `client`, or raise a 429 telling when to retry."""
        now = self._clock()
        window = int(now // self._window)
        ends = (window + 1) * self._window
        if self._refused_until.get(client, 0.0) <= now:
            for slot in range(self._limit):
                key = f"web:rate:{self._name}:{client}:{window}:{slot}"
                if await self._store.claim(key, ttl=self._window):
                    return
            self._forget_past(now)
            self._refused_until[client] = ends
        retry = max(1, math.ceil(ends - now))
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
