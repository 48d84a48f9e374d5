"""The behaviour every conversation store must share."""

from __future__ import annotations

import asyncio
import time

from botkit.messages import Turn
from botkit.stores import ConversationStore, Store
from botkit.stores.base import UsageRecord, UsageTotal


def turn(role: str, content: str, at: float | None = None) -> Turn:
    return Turn(role, content, time.time() if at is None else at, 7)  # type: ignore[arg-type]


async def test_appended_turns_come_back_in_order(store: ConversationStore) -> None:
    await store.append("c1", [turn("user", "one"), turn("assistant", "two")])
    await store.append("c1", [turn("user", "three")])
    turns = await store.recent("c1", 10)
    assert [t.content for t in turns] == ["one", "two", "three"]
    assert [t.role for t in turns] == ["user", "assistant", "user"]
    assert turns[0].tokens == 7


async def test_recent_returns_only_the_newest_turns(store: ConversationStore) -> None:
    await store.append("c1", [turn("user", str(i)) for i in range(10)])
    assert [t.content for t in await store.recent("c1", 3)] == ["7", "8", "9"]
    assert await store.recent("c1", 0) == []


async def test_conversations_are_separate(store: ConversationStore) -> None:
    await store.append("a", [turn("user", "for a")])
    await store.append("b", [turn("user", "for b")])
    assert [t.content for t in await store.recent("a", 10)] == ["for a"]
    assert await store.recent("unknown", 10) == []


async def test_reset_forgets_one_conversation(store: ConversationStore) -> None:
    await store.append("a", [turn("user", "x")])
    await store.append("b", [turn("user", "y")])
    await store.reset("a")
    assert await store.recent("a", 10) == []
    assert len(await store.recent("b", 10)) == 1
    await store.reset("never-seen")


async def test_load_starts_fresh_after_the_idle_time(store: ConversationStore) -> None:
    long_ago = time.time() - 3600
    await store.append("old", [turn("user", "hello", long_ago), turn("assistant", "hi", long_ago)])
    assert await store.load("old", limit=10, idle_reset=60) == []
    await store.append("old", [turn("user", "new question")])
    assert [t.content for t in await store.load("old", limit=10, idle_reset=60)] == ["new question"]


async def test_load_keeps_a_recent_conversation(store: ConversationStore) -> None:
    await store.append("c", [turn("user", "hello")])
    assert len(await store.load("c", limit=10, idle_reset=60)) == 1
    assert len(await store.load("c", limit=10)) == 1


async def test_text_round_trips_exactly(store: ConversationStore) -> None:
    text = "Grüße 👋\n'quotes' \"double\" -- DROP TABLE turns; \x00 end"
    await store.append("c", [turn("user", text)])
    assert (await store.recent("c", 1))[0].content == text


async def test_records_round_trip_and_can_be_deleted(store: Store) -> None:
    value = {"bot": "shop", "metadata": {"plan": "pro", "n": [1, 2]}}
    await store.put_record("session:1", value)
    assert await store.get_record("session:1") == value
    value["bot"] = "changed after storing"
    assert (await store.get_record("session:1"))["bot"] == "shop"  # type: ignore[index]
    await store.put_record("session:1", {"bot": "other"})
    assert await store.get_record("session:1") == {"bot": "other"}
    assert await store.delete_record("session:1") is True
    assert await store.get_record("session:1") is None
    assert await store.delete_record("session:1") is False


async def test_records_expire(store: Store) -> None:
    await store.put_record("short", {"x": 1}, ttl=0.05)
    await store.put_record("long", {"x": 2}, ttl=60)
    await asyncio.sleep(0.1)
    assert await store.get_record("short") is None
    assert await store.get_record("long") == {"x": 2}
    assert await store.delete_record("short") is False


async def test_claim_is_true_once_per_key_until_it_expires(store: Store) -> None:
    assert await store.claim("event:Ev1", ttl=0.1) is True
    assert await store.claim("event:Ev1", ttl=0.1) is False
    assert await store.claim("event:Ev2", ttl=0.1) is True
    await asyncio.sleep(0.15)
    assert await store.claim("event:Ev1", ttl=0.1) is True


async def test_concurrent_claims_have_one_winner(store: Store) -> None:
    results = await asyncio.gather(*(store.claim("event:race", ttl=60) for _ in range(20)))
    assert results.count(True) == 1


async def test_usage_is_summed_per_day_bot_and_model(store: Store) -> None:
    def usage(day: str, bot: str, user: str, model: str, p: int, c: int) -> UsageRecord:
        return UsageRecord(day, bot, user, f"{bot}/web/{user}", model, p, c)

    await store.add_usage([usage("2026-11-01", "shop", "ann", "m1", 100, 10)])
    await store.add_usage(
        [
            usage("2026-11-01", "shop", "ann", "m1", 50, 5),
            usage("2026-11-01", "shop", "bob", "m1", 7, 3),
            usage("2026-11-01", "shop", "bob", "m2", 1, 1),
            usage("2026-11-02", "help", "ann", "m1", 20, 2),
        ]
    )
    totals = await store.usage_totals(since="2026-11-01")
    assert totals == [
        UsageTotal("2026-11-01", "shop", "m1", 157, 18),
        UsageTotal("2026-11-01", "shop", "m2", 1, 1),
        UsageTotal("2026-11-02", "help", "m1", 20, 2),
    ]
    assert await store.usage_totals(since="2026-11-02") == [totals[-1]]
    assert await store.usage_totals(since="2026-11-01", bot="help") == [totals[-1]]
    assert await store.tokens_used(day="2026-11-01", bot="shop") == 177
    assert await store.tokens_used(day="2026-11-01", bot="shop", user="ann") == 165
    assert await store.tokens_used(day="2026-11-03", bot="shop") == 0
