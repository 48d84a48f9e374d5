from __future__ import annotations

import asyncio

import pytest

from botkit.locks import ConversationLocks


async def test_a_cancelled_waiter_leaves_no_lock_behind() -> None:
    locks = ConversationLocks()
    inside = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("c"):
            inside.set()
            await release.wait()

    async def waiter() -> None:
        async with locks.hold("c"):
            raise AssertionError("a cancelled waiter must never get the lock")

    first = asyncio.create_task(holder())
    await inside.wait()
    second = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    release.set()
    await first
    assert len(locks) == 0


async def test_an_error_inside_releases_the_lock() -> None:
    locks = ConversationLocks()
    with pytest.raises(RuntimeError):
        async with locks.hold("c"):
            raise RuntimeError("boom")
    async with locks.hold("c"):
        assert len(locks) == 1
    assert len(locks) == 0
