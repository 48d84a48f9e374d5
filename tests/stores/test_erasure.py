"""Forgetting one customer and purging old conversations leave no row behind, on every
store, as each store's own queries show (its tables, its keys), and never touch another
customer's rows, even one whose id starts the same (u-1 and u-10)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as redis

from botkit.feedback import Votes
from botkit.handoff import Handoffs
from botkit.home import BotDefinition, BotHome
from botkit.llm.offline import FaqResponder
from botkit.llm.usage import UsageMeter
from botkit.outcomes import OutcomeRecorder
from botkit.pipeline import Pipeline
from botkit.privacy import forget, purge
from botkit.stores import Store
from botkit.stores.base import UsageRecord
from botkit.stores.memory import MemoryStore
from botkit.stores.postgres import PostgresStore
from botkit.stores.redis import RedisStore
from botkit.stores.sqlite import SqliteStore
from botkit.testing import FakeChannel, FakeDesk, write_bot
from tests.conftest import SHOP_FAQ
from tests.stores.conftest import POSTGRES_URL, REDIS_URL, in_schema

DESK = 'faq_answer_score = 0.1\n[handoff]\ndesk = "slack"\nslack_channel = "C0123456789"\n'
ONE = re.compile(r"u-1(?!\d)|secret-of-one")
TEN = re.compile(r"u-10|secret-of-ten")


async def everything(store: Store) -> str:
    """Every row or key the store holds, as text, read the store's own way."""
    if isinstance(store, MemoryStore):
        return repr(vars(store))
    if isinstance(store, SqliteStore):
        tables = await store._rows("SELECT name FROM sqlite_master WHERE type = 'table'")
        rows = [await store._rows(f"SELECT * FROM {name}") for (name,) in tables]
        return repr(rows)
    if isinstance(store, RedisStore):
        client = redis.Redis.from_url(REDIS_URL)
        dumped: list[Any] = []
        try:
            async for key in client.scan_iter(match=f"{store.prefix}:*"):
                kind = (await client.type(key)).decode()
                read = {
                    "string": client.get,
                    "list": lambda k: client.lrange(k, 0, -1),
                    "hash": client.hgetall,
                    "set": client.smembers,
                    "zset": lambda k: client.zrange(k, 0, -1),
                    "stream": lambda k: client.xrange(k),
                }[kind]
                dumped.append((key, await read(key)))
        finally:
            await client.aclose()
        return repr(dumped).replace("\\\\", "\\")
    assert isinstance(store, PostgresStore)
    conn = await asyncpg.connect(in_schema(POSTGRES_URL, store.schema))
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1", store.schema
        )
        return repr([await conn.fetch(f"SELECT * FROM {t['tablename']}") for t in tables])
    finally:
        await conn.close()


async def two_customers(store: Store, bot: BotDefinition, *, at: float | None = None) -> None:
    """u-1 and u-10 each ask, vote, ask for a person, and spend tokens; each has a web
    session record and a desk record of their handoff."""
    recorder = OutcomeRecorder(store, clock=(lambda: at) if at else time.time)
    handoffs = Handoffs(store=store, bots=[bot], desks={"shop": FakeDesk()})
    pipeline = Pipeline(
        bot=bot,
        store=store,
        responder=FaqResponder(bot),
        listeners=[recorder.observe],
        handoffs=handoffs,
    )
    votes = Votes(store, {"shop": pipeline})
    for user, secret in (("u-1", "secret-of-one"), ("u-10", "secret-of-ten")):
        chat = FakeChannel(pipeline.handle, bot="shop", channel="web", user_id=user)
        answer = await chat.say(f"When are you open? ({secret})")
        assert answer is not None and answer.kind == "answer"
        cast = await votes.cast(
            bot="shop",
            channel="web",
            conversation_id=user,
            message_id="1",
            user=user,
            score=-1,
            comment=f"not what I asked ({secret})",
        )
        assert cast.status == "recorded"
        handed = await chat.say("/human")
        assert handed is not None and handed.kind == "handoff"
        await store.put_record(f"web:session:{user}", {"user": user, "note": secret})
        await store.put_record(f"slack:desk:handoff:{handed.handoff}", {"blocks": secret})
        day = time.strftime("%Y-%m-%d", time.gmtime())
        await store.add_usage([UsageRecord(day, "shop", user, f"shop/web/{user}", "m", 90, 10)])
    await recorder.aclose()


def desk_bot(home: Path) -> BotDefinition:
    write_bot(home, "shop", faq=SHOP_FAQ, settings=DESK)
    return BotHome(home).load_checked("shop")


async def test_forget_leaves_nothing_of_one_customer_and_all_of_the_other(
    store: Store, tmp_path: Path
) -> None:
    await two_customers(store, desk_bot(tmp_path))
    before = await everything(store)
    assert ONE.search(before) and TEN.search(before)
    done = await forget(store, "u-1", again_after=0)
    assert (done.conversations, done.messages, done.votes, done.handoffs) == (1, 2, 1, 1)
    assert done.usage_rows == 1
    after = await everything(store)
    found = ONE.search(after)
    assert found is None, after[max(0, found.start() - 200) : found.end() + 100]
    assert len(TEN.findall(after)) == len(TEN.findall(before))  # all of u-10 is there
    assert len(await store.outcomes(user="u-10")) == 2
    assert len(await store.recent("shop/web/u-10", 10)) == 4
    assert await store.get_record("web:session:u-10") is not None
    # The tokens stay counted, under no one's name.
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert await store.tokens_used(day=day, bot="shop") == 200
    assert (await forget(store, "u-1", again_after=0)).nothing


async def test_forget_looks_again_for_what_another_worker_writes_a_moment_later(
    store: Store, tmp_path: Path
) -> None:
    # Another worker has just answered u-1: the outcome that names them (through which
    # forget finds the conversation) and their tokens are still in its buffers.
    bot = desk_bot(tmp_path)
    recorder = OutcomeRecorder(store, flush_seconds=0.5)
    meter = UsageMeter(store, flush_seconds=0.5)
    pipeline = Pipeline(
        bot=bot, store=store, responder=FaqResponder(bot), listeners=[recorder.observe]
    )
    chat = FakeChannel(pipeline.handle, bot="shop", channel="web", user_id="u-1")
    await chat.say("When are you open? (secret-of-one)")
    day = time.strftime("%Y-%m-%d", time.gmtime())
    meter.add(UsageRecord(day, "shop", "u-1", "shop/web/u-1", "m", 90, 10))
    done = await forget(store, "u-1", again_after=1.5)
    await recorder.aclose()
    await meter.aclose()
    assert (done.conversations, done.messages, done.usage_rows) == (1, 1, 1)
    found = ONE.search(await everything(store))
    assert found is None, found
    assert await store.tokens_used(day=day, bot="shop") == 100  # counted, under no name


async def test_purge_deletes_what_is_past_the_retention_and_nothing_else(
    store: Store, tmp_path: Path
) -> None:
    bot = desk_bot(tmp_path)
    old = time.time() - 100 * 86400
    await two_customers(store, bot, at=old)
    recorder = OutcomeRecorder(store)
    pipeline = Pipeline(
        bot=bot, store=store, responder=FaqResponder(bot), listeners=[recorder.observe]
    )
    chat = FakeChannel(pipeline.handle, bot="shop", channel="web", user_id="u-2")
    await chat.say("How long does shipping take? (secret-of-two)")
    await recorder.aclose()
    assert await purge(store, "shop", retention=90 * 86400) == 2
    after = await everything(store)
    assert "secret-of-one" not in after and "secret-of-ten" not in after
    assert "secret-of-two" in after
    assert [o.user for o in await store.outcomes(bot="shop")] == ["u-2"]
    assert await purge(store, "shop", retention=90 * 86400) == 0
