"""The behaviour every conversation store must share."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from botkit.messages import Feedback, Handoff, Outcome, Turn
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


async def test_turns_keep_ids_kinds_and_agent_names(store: Store) -> None:
    turns = [
        Turn("user", "where is my order?", time.time(), 5, id="m1"),
        Turn("assistant", "A person will help.", time.time(), 6, reply_to="m1", kind="handoff"),
        Turn("agent", "Hi, Anna here.", time.time(), 4, id="a1", name="Anna"),
    ]
    await store.append("c", turns)
    assert await store.recent("c", 10) == turns


async def test_turns_since_a_cursor(store: Store) -> None:
    start = await store.cursor("c")
    await store.append("c", [turn("user", "one"), turn("assistant", "two")])
    middle, first = await store.turns_since("c", start)
    assert [t.content for t in first] == ["one", "two"]
    assert middle == await store.cursor("c")
    await store.append("c", [turn("user", "three")])
    end, second = await store.turns_since("c", middle)
    assert [t.content for t in second] == ["three"]
    assert await store.turns_since("c", end) == (end, [])


async def test_a_reset_keeps_cursors_moving_forward(store: Store) -> None:
    await store.append("c", [turn("user", "old")])
    before = await store.cursor("c")
    await store.reset("c")
    await store.append("c", [turn("user", "new")])
    _, turns = await store.turns_since("c", before)
    assert [t.content for t in turns] == ["new"]


async def test_a_lock_orders_one_conversation(store: Store) -> None:
    order: list[str] = []

    async def hold(name: str, seconds: float) -> None:
        async with store.lock("c"):
            order.append(f"{name} in")
            await asyncio.sleep(seconds)
            order.append(f"{name} out")

    await asyncio.gather(hold("a", 0.05), hold("b", 0), hold("c", 0))
    assert order == ["a in", "a out", "b in", "b out", "c in", "c out"]


async def test_locks_of_different_conversations_do_not_wait(store: Store) -> None:
    async with store.lock("c1"):
        async with asyncio.timeout(1):
            async with store.lock("c2"):
                pass


async def test_an_append_under_the_lock_is_kept(store: Store) -> None:
    async with store.lock("c") as lease:
        await store.append("c", [turn("user", "fenced")], lease=lease)
    assert [t.content for t in await store.recent("c", 5)] == ["fenced"]


async def test_the_last_append_lets_go_of_the_lock(store: Store) -> None:
    async with store.lock("c") as lease:
        await store.append("c", [turn("user", "question")], lease=lease)
        await store.append_and_release("c", [turn("assistant", "answer")], lease)
    assert [t.content for t in await store.recent("c", 5)] == ["question", "answer"]
    async with asyncio.timeout(1), store.lock("c"):  # free at once, and not held twice
        pass


async def test_rates_let_a_burst_through_then_ask_to_wait(store: Store) -> None:
    waits = [await store.take_rate("r", 1, rate=1, burst=3, max_wait=60) for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert 0.9 < waits[3] <= 1.01 and 1.9 < waits[4] <= 2.01


async def test_a_take_over_max_wait_reserves_nothing(store: Store) -> None:
    assert await store.take_rate("r", 2, rate=1, burst=2, max_wait=0) == 0
    refused = await store.take_rate("r", 1, rate=1, burst=2, max_wait=0)
    assert 0.9 < refused <= 1.01
    # Nothing was reserved: asking again says the same, not twice as long.
    assert 0.9 < await store.take_rate("r", 1, rate=1, burst=2, max_wait=0) <= 1.01


async def test_a_cost_larger_than_the_burst_still_waits_its_share(store: Store) -> None:
    # The audit's case: 110-token requests against a 300-token-a-minute budget.
    rate = 300 / 60
    waits = [
        await store.take_rate("tpm", 110, rate=rate, burst=300, max_wait=1e9) for _ in range(6)
    ]
    assert waits[0] == 0 and waits[1] == 0
    assert waits[-1] == pytest.approx(6 * 110 / rate - 300 / rate, abs=0.1)


async def test_a_negative_cost_gives_back(store: Store) -> None:
    await store.take_rate("r", 10, rate=1, burst=10, max_wait=0)
    assert await store.take_rate("r", 1, rate=1, burst=10, max_wait=0) > 0
    await store.take_rate("r", -5, rate=1, burst=10, max_wait=1e9)
    assert await store.take_rate("r", 1, rate=1, burst=10, max_wait=0) == 0


async def test_inbox_items_stay_until_done(store: Store) -> None:
    item = await store.inbox_add(channel="web", conversation="c", payload={"text": "hi"})
    assert item is not None and item.payload == {"text": "hi"} and item.attempts == 1
    assert await store.inbox_take(["web"]) == []  # held by this worker
    await store.inbox_done(item)
    assert await store.inbox_take(["web"]) == []


async def test_an_inbox_item_for_any_worker_is_taken_once(store: Store) -> None:
    item = await store.inbox_add(channel="telegram", conversation="c", payload={}, owned=False)
    assert item is not None
    assert await store.inbox_take(["web"]) == []  # another channel's work
    taken = await store.inbox_take(["telegram", "web"])
    assert [t.id for t in taken] == [item.id]
    assert await store.inbox_take(["telegram"]) == []
    await store.inbox_done(taken[0])


async def test_the_inbox_recognises_a_redelivery(store: Store) -> None:
    first = await store.inbox_add(channel="slack", conversation="c", payload={}, dedupe="ev1")
    assert first is not None
    await store.inbox_done(first)
    again = await store.inbox_add(channel="slack", conversation="c", payload={}, dedupe="ev1")
    assert again is None
    assert await store.inbox_add(channel="slack", conversation="c", payload={}, dedupe="ev2")


async def test_an_item_let_go_comes_back_after_its_delay(store: Store) -> None:
    item = await store.inbox_add(channel="web", conversation="c", payload={"n": 1})
    assert item is not None
    await store.inbox_later(item, delay=0.1)
    assert await store.inbox_take(["web"]) == []
    await asyncio.sleep(0.3)
    taken = await store.inbox_take(["web"])
    assert [(t.id, t.payload, t.attempts) for t in taken] == [(item.id, {"n": 1}, 2)]


def handoff(conversation: str = "shop/telegram/42", **fields: object) -> Handoff:
    now = time.time()
    values: dict[str, object] = {
        "id": f"h-{conversation}-{now}",
        "bot": "shop",
        "conversation": conversation,
        "channel": "telegram",
        "user_id": "42",
        "address": {"chat_id": 42},
        "trigger": "command",
        "desk": "slack",
        "created": now,
        "updated": now,
    }
    return Handoff(**(values | fields))  # type: ignore[arg-type]


async def test_a_conversation_has_one_open_handoff(store: Store) -> None:
    first = await store.handoff_open(handoff())
    again = await store.handoff_open(handoff(id="another"))
    assert again == first
    assert await store.handoff_current("shop/telegram/42") == first
    assert await store.handoff_get(first.id) == first
    assert await store.handoff_current("shop/telegram/7") is None


async def test_handoffs_change_by_compare_and_set(store: Store) -> None:
    opened = await store.handoff_open(handoff())
    taken = await store.handoff_update(
        dataclasses.replace(opened, state="human", agent_name="Anna", desk_ref="C1/1.2")
    )
    assert taken is not None and taken.version == opened.version + 1
    # A second change from the same (now stale) version loses.
    assert await store.handoff_update(dataclasses.replace(opened, state="resolved")) is None
    assert await store.handoff_get(opened.id) == taken
    assert await store.handoff_by_desk("C1/1.2") == taken


async def test_a_resolved_handoff_is_no_longer_open(store: Store) -> None:
    opened = await store.handoff_open(handoff())
    other = await store.handoff_open(handoff("help/web/s1", bot="help"))
    assert [h.id for h in await store.handoffs_open()] == [opened.id, other.id]
    assert [h.id for h in await store.handoffs_open("help")] == [other.id]
    resolved = await store.handoff_update(
        dataclasses.replace(opened, state="resolved", outcome="resolved", desk_ref="C1/9.9")
    )
    assert resolved is not None
    assert await store.handoff_current(opened.conversation) is None
    assert [h.id for h in await store.handoffs_open()] == [other.id]
    assert await store.handoff_by_desk("C1/9.9") == resolved
    reopened = await store.handoff_open(handoff(id="second"))
    assert reopened.id == "second"


async def test_a_publish_wakes_a_subscriber(store: Store) -> None:
    async with store.subscribe("session:1") as subscription:
        await store.publish("session:2")
        assert await subscription.wait(0.05) is False
        await store.publish("session:1")
        assert await subscription.wait(5) is True


# --- outcomes, feedback and erasure ------------------------------------------------------


def outcome(
    conversation: str = "shop/telegram/1", message_id: str = "m1", **fields: object
) -> Outcome:
    values: dict[str, object] = {
        "bot": "shop",
        "channel": "telegram",
        "conversation": conversation,
        "user": "u-1",
        "message_id": message_id,
        "at": 1_000.0,
        "kind": "model",
        "question": f"question {message_id}",
    }
    return Outcome(**(values | fields))  # type: ignore[arg-type]


def vote(
    conversation: str = "shop/telegram/1", message_id: str = "m1", **fields: object
) -> Feedback:
    values: dict[str, object] = {
        "bot": "shop",
        "channel": "telegram",
        "conversation": conversation,
        "message_id": message_id,
        "user": "u-1",
        "score": 1,
        "at": 1_000.0,
    }
    return Feedback(**(values | fields))  # type: ignore[arg-type]


async def test_outcomes_round_trip_and_filter(store: Store) -> None:
    first = outcome(
        faq="faq/hours.md",
        faq_score=0.61,
        seconds=1.25,
        prompt_tokens=120,
        completion_tokens=30,
        model="gpt-4o-mini",
        cost=0.0000432,
        error="RateLimitError",
        question='Grüße 👋 "quotes"',
    )
    later = outcome(message_id="m2", at=2_000.0, kind="fallback")
    other_user = outcome("shop/telegram/2", "m1", user="u-10", at=1_500.0, kind="handoff")
    other_bot = outcome("help/web/s", "x", bot="help", channel="web", at=1_200.0)
    await store.add_outcomes([later, first])
    await store.add_outcomes([other_user, other_bot])
    assert await store.outcomes() == [first, other_bot, other_user, later]
    assert await store.outcomes(bot="shop") == [first, other_user, later]
    assert await store.outcomes(since=1_200.0, until=2_000.0) == [other_bot, other_user]
    assert await store.outcomes(user="u-1") == [first, other_bot, later]
    assert await store.outcomes(user="u-1", bot="shop", since=1_500.0) == [later]
    assert await store.outcomes(conversation="shop/telegram/2") == [other_user]
    assert await store.outcomes(user="u-") == []


async def test_a_messages_outcome_is_replaced_not_added(store: Store) -> None:
    await store.add_outcomes([outcome(kind="model")])
    await store.add_outcomes(
        [outcome(kind="faq", at=1_001.0), outcome(message_id="m2", at=1_002.0)]
    )
    kinds = [(o.message_id, o.kind) for o in await store.outcomes()]
    assert kinds == [("m1", "faq"), ("m2", "model")]


async def test_one_vote_per_answer_a_second_changes_it(store: Store) -> None:
    await store.put_feedback(vote(score=1))
    await store.put_feedback(vote(score=-1, comment="wrong hours", at=1_010.0))
    await store.put_feedback(vote(message_id="m2", user="u-10", at=1_020.0))
    assert await store.feedback(conversation="shop/telegram/1") == [
        vote(score=-1, comment="wrong hours", at=1_010.0),
        vote(message_id="m2", user="u-10", at=1_020.0),
    ]
    assert [f.message_id for f in await store.feedback(user="u-10")] == ["m2"]
    assert [f.message_id for f in await store.feedback(bot="shop", since=1_015.0)] == ["m2"]
    assert await store.feedback(bot="help") == []


async def test_idle_conversations_by_their_newest_outcome(store: Store) -> None:
    await store.add_outcomes(
        [
            outcome("shop/web/old", "1", at=100.0),
            outcome("shop/web/old", "2", at=200.0),
            outcome("shop/web/busy", "1", at=100.0),
            outcome("shop/web/busy", "2", at=900.0),
            outcome("help/web/old", "1", bot="help", at=100.0),
        ]
    )
    assert await store.idle_conversations(bot="shop", before=500.0) == ["shop/web/old"]
    assert await store.idle_conversations(bot="shop", before=50.0) == []


async def _conversation(store: Store, key: str, user: str, *messages: str) -> None:
    """A conversation: each message of `user`, its answer, its outcome and a vote on it."""
    now = time.time()
    for message_id in messages:
        await store.append(
            key,
            [
                Turn("user", f"{user} asks {message_id}", now, 3, id=message_id),
                Turn("assistant", f"answer to {message_id}", now, 3, reply_to=message_id),
            ],
        )
        await store.add_outcomes([outcome(key, message_id, user=user, at=now)])
        await store.put_feedback(vote(key, message_id, user=user, at=now))


async def test_erase_deletes_a_whole_conversation(store: Store) -> None:
    await _conversation(store, "shop/telegram/1", "u-1", "m1", "m2")
    await store.append("shop/telegram/1", [Turn("agent", "Anna here", time.time(), 2, name="A")])
    await store.handoff_open(handoff("shop/telegram/1", id="h-1", user_id="u-1"))
    await _conversation(store, "shop/telegram/10", "u-10", "m1")
    await store.handoff_open(handoff("shop/telegram/10", id="h-10", user_id="u-10"))
    assert await store.erase("shop/telegram/1") == ["h-1"]
    assert await store.recent("shop/telegram/1", 10) == []
    assert await store.outcomes(conversation="shop/telegram/1") == []
    assert await store.feedback(conversation="shop/telegram/1") == []
    assert await store.outcomes(user="u-1") == []
    assert await store.handoff_current("shop/telegram/1") is None
    assert [h.id for h in await store.handoffs_open()] == ["h-10"]
    assert await store.idle_conversations(bot="shop", before=time.time() + 1) == [
        "shop/telegram/10"
    ]
    # The other conversation is whole.
    assert len(await store.recent("shop/telegram/10", 10)) == 2
    assert len(await store.outcomes(user="u-10")) == 1
    assert len(await store.feedback(user="u-10")) == 1
    assert await store.erase("never-seen") == []


async def test_erase_of_one_users_part_of_a_shared_conversation(store: Store) -> None:
    key = "shop/slack/C1:1.0"
    await _conversation(store, key, "u-1", "m1")
    await _conversation(store, key, "u-10", "m2")
    await _conversation(store, key, "u-1", "m3")
    # u-1 voted on u-10's answer too; u-10 started a handoff.
    await store.put_feedback(vote(key, "m2", user="u-1", score=-1, at=time.time()))
    await store.handoff_open(handoff(key, id="h-u10", user_id="u-10"))
    before = await store.cursor(key)
    assert await store.erase(key, user="u-1", messages=["m1", "m3"]) == []
    assert [t.content for t in await store.recent(key, 10)] == ["u-10 asks m2", "answer to m2"]
    assert [o.user for o in await store.outcomes(conversation=key)] == ["u-10"]
    assert await store.feedback(conversation=key) == []  # u-1's vote on m2 went too
    assert await store.outcomes(user="u-1") == []
    assert [h.id for h in await store.handoffs_open()] == ["h-u10"]
    # A reader's cursor still sees what comes after.
    await store.append(key, [turn("user", "later")])
    _, turns = await store.turns_since(key, before)
    assert [t.content for t in turns] == ["later"]
    # And the handoffs u-1 started go.
    assert await store.erase(key, user="u-10", messages=["m2"]) == ["h-u10"]
    assert await store.handoffs_open() == []


async def test_erase_usage_takes_the_users_name_off_and_keeps_the_totals(store: Store) -> None:
    def usage(user: str, p: int, bot: str = "shop") -> UsageRecord:
        return UsageRecord("2026-11-01", bot, user, f"{bot}/web/{user}", "m1", p, 1)

    await store.add_usage([usage("u-1", 100), usage("u-10", 10), usage("u-1", 5, "help")])
    totals = await store.usage_totals(since="2026-11-01")
    assert await store.erase_usage(user="u-1", bot="shop") == 1
    assert await store.usage_totals(since="2026-11-01") == totals
    assert await store.tokens_used(day="2026-11-01", bot="shop", user="u-1") == 0
    assert await store.tokens_used(day="2026-11-01", bot="shop", user="u-10") == 11
    assert await store.tokens_used(day="2026-11-01", bot="help", user="u-1") == 6
    assert await store.tokens_used(day="2026-11-01", bot="shop") == 112
    assert await store.erase_usage(user="u-1") == 1
    assert await store.tokens_used(day="2026-11-01", bot="help", user="u-1") == 0
    assert await store.usage_totals(since="2026-11-01") == totals
    assert await store.erase_usage(user="nobody") == 0


async def test_recent_stops_once_the_newest_turns_pass_a_token_budget(store: Store) -> None:
    now = time.time()
    await store.append("c", [Turn("user", f"t{i}", now, 10) for i in range(50)])
    # 25 tokens: the two newest fit (20), the third passes the budget and is the last read.
    within = await store.recent("c", 40, max_tokens=25)
    assert [t.content for t in within] == ["t47", "t48", "t49"]
    assert len(await store.recent("c", 40)) == 40  # no budget: the limit alone
    assert [t.content for t in await store.recent("c", 2, max_tokens=1_000)] == ["t48", "t49"]
    assert await store.load("c", limit=40, max_tokens=25) == within
