"""What workers sharing one backend rely on: each store here plays one worker (process).

The lease is short (see conftest), so a worker that stops renewing — a dead or stalled
process — loses its locks and inbox items within a test.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from botkit.messages import Turn
from botkit.stores import LeaseLost, Store
from botkit.stores.base import LeaseKeeper
from tests.stores.conftest import LEASE

Pair = tuple[Store, Store]


def stall(store: Store) -> None:
    """Stop a worker's lease renewals, as if its process had frozen or died."""
    keeper: LeaseKeeper = store.__dict__["_lease_keeper"]
    assert keeper._task is not None
    keeper._task.cancel()


def turn(text: str) -> Turn:
    return Turn("user", text, time.time(), 1)


async def test_a_lock_excludes_the_other_worker(pair: Pair) -> None:
    a, b = pair
    events: list[str] = []

    async def second() -> None:
        async with b.lock("c"):
            events.append("b")

    async with a.lock("c"):
        task = asyncio.create_task(second())
        await asyncio.sleep(LEASE * 2)  # longer than a lease: a renews it meanwhile
        events.append("a done")
    await asyncio.wait_for(task, 5)
    assert events == ["a done", "b"]


async def test_a_dead_workers_lock_passes_on_after_its_lease(pair: Pair) -> None:
    a, b = pair
    held = a.lock("c")
    await held.__aenter__()
    stall(a)
    started = time.monotonic()
    async with asyncio.timeout(5), b.lock("c"):
        waited = time.monotonic() - started
    assert LEASE * 0.5 < waited < LEASE * 4


async def test_a_stale_workers_late_append_is_refused(pair: Pair) -> None:
    a, b = pair
    held = a.lock("c")
    lease = await held.__aenter__()
    await a.append("c", [turn("first, under a's lock")], lease=lease)
    stall(a)
    async with asyncio.timeout(5), b.lock("c") as newer:
        await b.append("c", [turn("b took over")], lease=newer)
        with pytest.raises(LeaseLost):
            await a.append("c", [turn("a, too late")], lease=lease)
    assert [t.content for t in await b.recent("c", 10)] == ["first, under a's lock", "b took over"]


async def test_the_last_append_frees_the_lock_before_its_block_ends(pair: Pair) -> None:
    a, b = pair
    async with a.lock("c") as lease:
        await a.append_and_release("c", [turn("answer")], lease)
        async with asyncio.timeout(LEASE / 2), b.lock("c") as newer:  # no wait for a
            await b.append("c", [turn("next")], lease=newer)
    assert [t.content for t in await a.recent("c", 10)] == ["answer", "next"]


async def test_a_stale_workers_last_append_is_refused_and_keeps_nothing(pair: Pair) -> None:
    a, b = pair
    held = a.lock("c")
    lease = await held.__aenter__()
    stall(a)
    async with asyncio.timeout(5), b.lock("c") as newer:
        with pytest.raises(LeaseLost):
            await a.append_and_release("c", [turn("a, too late")], lease)
        await b.append("c", [turn("b took over")], lease=newer)
    assert [t.content for t in await b.recent("c", 10)] == ["b took over"]


async def test_a_dead_workers_inbox_item_is_taken_up_once(pair: Pair) -> None:
    a, b = pair
    item = await a.inbox_add(channel="web", conversation="c", payload={"text": "hello"})
    assert item is not None
    assert await b.inbox_take(["web"]) == []  # a is alive and holds it
    await asyncio.sleep(LEASE * 1.5)
    assert await b.inbox_take(["web"]) == []  # a renews it
    stall(a)
    await asyncio.sleep(LEASE * 1.5)
    taken = await b.inbox_take(["web"])
    assert [(t.payload, t.attempts) for t in taken] == [({"text": "hello"}, 2)]
    assert await a.inbox_take(["web"]) == []  # b holds it now
    await b.inbox_done(taken[0])
    await asyncio.sleep(LEASE * 1.5)
    assert await a.inbox_take(["web"]) + await b.inbox_take(["web"]) == []


async def test_work_for_any_worker_goes_to_exactly_one(pair: Pair) -> None:
    a, b = pair
    for n in range(10):
        await a.inbox_add(channel="telegram", conversation="c", payload={"n": n}, owned=False)
    taken_a, taken_b = await asyncio.gather(a.inbox_take(["telegram"]), b.inbox_take(["telegram"]))
    numbers = sorted(t.payload["n"] for t in taken_a + taken_b)
    assert numbers == list(range(10))


async def test_a_redelivery_is_recognised_by_every_worker(pair: Pair) -> None:
    a, b = pair
    results = await asyncio.gather(
        *(
            store.inbox_add(channel="slack", conversation="c", payload={}, dedupe="Ev1")
            for store in (a, b, a, b)
        )
    )
    assert sum(r is not None for r in results) == 1


async def test_rates_are_shared(pair: Pair) -> None:
    a, b = pair
    waits = [
        await store.take_rate("rpm", 1, rate=6 / 60, burst=6, max_wait=0) for store in (a, b) * 4
    ]
    assert waits[:6] == [0] * 6
    assert all(w > 0 for w in waits[6:])


async def test_handoffs_are_shared(pair: Pair) -> None:
    from tests.stores.test_contract import handoff

    a, b = pair
    opened = await a.handoff_open(handoff())
    assert await b.handoff_current(opened.conversation) == opened
    assert (await b.handoff_open(handoff(id="racing"))).id == opened.id


async def test_a_publish_reaches_the_other_worker(pair: Pair) -> None:
    a, b = pair
    async with b.subscribe("session:1") as subscription:
        started = time.monotonic()
        await a.publish("session:1")
        await subscription.wait(5)
        # Redis tells at once; SQLite readers look again at least every half second.
        assert time.monotonic() - started < 1.0


async def test_a_late_renewal_does_not_take_back_an_item_another_worker_took(pair: Pair) -> None:
    a, b = pair
    item = await a.inbox_add(channel="web", conversation="c", payload={})
    assert item is not None
    stall(a)
    await asyncio.sleep(LEASE * 1.5)
    assert len(await b.inbox_take(["web"])) == 1  # a looked dead: b has it now
    keeper: LeaseKeeper = a.__dict__["_lease_keeper"]
    await keeper.renew()  # a wakes up and renews what it thinks it holds
    assert item.id not in keeper.held_items  # …and lets go of it: it is b's now
    await asyncio.sleep(LEASE * 1.5)  # b, alive, keeps renewing it meanwhile
    assert await a.inbox_take(["web"]) == []
    assert await b.inbox_take(["web"]) == []  # still b's: a did not take it back
