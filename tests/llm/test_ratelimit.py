"""Client-side budgets, kept in the store so every worker shares them."""

from __future__ import annotations

import asyncio
import time

from botkit.llm.ratelimit import RateLimit
from botkit.stores import MemoryStore


async def test_a_burst_goes_through_then_requests_are_paced() -> None:
    limit = RateLimit(MemoryStore(), key="api", requests_per_minute=600)  # 10 a second
    started = time.monotonic()
    for _ in range(600):
        await limit.take(0)
    assert time.monotonic() - started < 0.5
    await limit.take(0)  # the 601st waits a tenth of a second
    assert time.monotonic() - started >= 0.09


async def test_waiters_are_served_in_order() -> None:
    limit = RateLimit(MemoryStore(), key="api", tokens_per_minute=1200)
    await limit.take(1200)
    order: list[int] = []

    async def take(i: int) -> None:
        await limit.take(2)
        order.append(i)

    await asyncio.gather(*(take(i) for i in range(5)))
    assert order == [0, 1, 2, 3, 4]


async def test_reported_usage_corrects_the_estimate() -> None:
    limit = RateLimit(MemoryStore(), key="api", tokens_per_minute=60_000)  # 1,000 a second
    await limit.take(1000)
    await limit.settle(1000, 60_000)  # the answer cost far more than estimated: nothing left
    started = time.monotonic()
    await limit.take(500)  # half a second of refill
    assert time.monotonic() - started >= 0.45


async def test_a_request_larger_than_the_budget_still_waits_its_share() -> None:
    # The audit: with 300 tokens a minute, six 110-token requests finished in 1.6 s.
    limit = RateLimit(MemoryStore(), key="api", tokens_per_minute=300)
    waits = []
    for _ in range(3):
        task = asyncio.create_task(limit.take(110))
        await asyncio.sleep(0.05)
        waits.append(task.done())
        task.cancel()
    # Two fit in the minute's budget at once; the third must wait about 4 s.
    assert waits == [True, True, False]


async def test_budgets_are_shared_by_workers_on_one_store() -> None:
    store = MemoryStore()
    first = RateLimit(store, key="api", requests_per_minute=6)
    second = RateLimit(store, key="api", requests_per_minute=6)
    for _ in range(3):
        await first.take(0)
        await second.take(0)
    waiting = asyncio.create_task(first.take(0))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the seventh waits ten seconds, whichever worker asks
    waiting.cancel()
