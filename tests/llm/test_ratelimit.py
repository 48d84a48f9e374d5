from __future__ import annotations

import asyncio
import time

import pytest

from botkit.llm.ratelimit import RateLimit, TokenBucket


async def test_a_full_bucket_lets_a_burst_through_then_paces() -> None:
    bucket = TokenBucket(per_minute=600)  # 10 a second
    started = time.monotonic()
    await bucket.take(600)
    assert time.monotonic() - started < 0.1
    await bucket.take(5)  # must wait for half a second of refill
    assert time.monotonic() - started >= 0.45


async def test_waiters_are_served_in_order() -> None:
    bucket = TokenBucket(per_minute=1200)
    await bucket.take(1200)
    order: list[int] = []

    async def take(i: int) -> None:
        await bucket.take(2)
        order.append(i)

    await asyncio.gather(*(take(i) for i in range(5)))
    assert order == [0, 1, 2, 3, 4]


async def test_reported_usage_corrects_the_estimate() -> None:
    limit = RateLimit(tokens_per_minute=60_000)  # 1,000 a second
    await limit.take(1000)
    limit.settle(1000, 60_000)  # the answer cost far more than estimated: nothing left
    started = time.monotonic()
    await limit.take(500)  # half a second of refill
    assert time.monotonic() - started >= 0.45


def test_a_non_positive_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(per_minute=0)
