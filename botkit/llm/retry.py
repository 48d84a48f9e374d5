"""When and how long to wait before trying a failed call again."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from botkit.errors import APITimeoutError, LLMError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, a bounded number of retries and an overall deadline.

    The server's `Retry-After` wins over the backoff; an error it marks as not worth
    retrying (`x-should-retry: false`, an exhausted quota, a bad request) is not retried.
    """

    max_retries: int = 3
    deadline: float = 60.0
    initial_backoff: float = 0.5
    max_backoff: float = 8.0

    def backoff(self, retry: int) -> float:
        delay = min(self.max_backoff, self.initial_backoff * 2.0**retry)
        return delay * (1 - 0.25 * random.random())

    def delay_before(self, retry: int, err: LLMError, deadline_at: float) -> float | None:
        """Seconds to wait before retry number `retry`, or None to give up now."""
        if not err.retryable or retry >= self.max_retries:
            return None
        delay = err.retry_after if err.retry_after is not None else self.backoff(retry)
        if asyncio.get_running_loop().time() + delay >= deadline_at:
            return None
        return delay

    async def call(self, attempt: Callable[[], Awaitable[T]], *, deadline_at: float) -> T:
        """Run `attempt` until it succeeds, may not be retried, or time runs out."""
        retry = 0
        while True:
            try:
                async with asyncio.timeout_at(deadline_at):
                    return await attempt()
            except TimeoutError as err:
                raise APITimeoutError("no answer before the deadline for this message") from err
            except LLMError as err:
                delay = self.delay_before(retry, err, deadline_at)
                if delay is None:
                    raise
                logger.info("retrying in %.2f s after: %s", delay, err)
                await asyncio.sleep(delay)
                retry += 1
