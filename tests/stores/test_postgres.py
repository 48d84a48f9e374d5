"""What only the PostgreSQL store promises: its schema, its connections and its errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from botkit.errors import StoreError
from botkit.messages import Turn
from botkit.stores import open_store
from botkit.stores.base import UsageRecord
from botkit.stores.postgres import SCHEMA_VERSION, PostgresStore
from tests.loopback import free_port
from tests.stores.conftest import LEASE, POSTGRES_URL, in_schema, postgres_schema
from tests.stores.test_sharing import stall


@pytest.fixture
async def url() -> AsyncIterator[str]:
    """A URL whose tables go in an empty schema of this test's own."""
    async for url in postgres_schema():
        yield url


@pytest.fixture
async def other_url() -> AsyncIterator[str]:
    """Another deployment's: a second schema in the same database."""
    async for url in postgres_schema():
        yield url


@pytest.fixture
async def admin() -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own, to look at (and break) what the store did."""
    conn = await asyncpg.connect(POSTGRES_URL)
    yield conn
    await conn.close()


def schema_of(url: str) -> str:
    return url.rsplit("%3D", 1)[1]


def with_password(url: str) -> tuple[str, str]:
    """The URL with a password, and the password: the test server's own if the URL has
    one, else one it ignores (the default test server trusts local connections)."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    netloc = f"{parts.username or 'postgres'}:hunter2@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc)), "hunter2"


def named(url: str, name: str) -> str:
    """The URL with an application_name, so the test can find its connections."""
    return f"{url}&application_name={name}"


async def until_waiting(admin: asyncpg.Connection, name: str) -> None:
    """Return once a statement of connections named `name` waits for a row lock."""
    async with asyncio.timeout(10):
        while True:
            waiting = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = $1 AND wait_event_type = 'Lock'",
                name,
            )
            if waiting:
                return
            await asyncio.sleep(0.01)


def turn(text: str) -> Turn:
    return Turn("user", text, time.time(), 1)


async def test_an_empty_schema_is_migrated_and_a_reopen_changes_nothing(
    url: str, admin: asyncpg.Connection
) -> None:
    schema = schema_of(url)
    async with await PostgresStore.open(url) as store:
        await store.append("c", [turn("remember me")])
    applied = await admin.fetch(f"SELECT version, applied FROM {schema}.botkit_schema")
    assert [row["version"] for row in applied] == list(range(1, SCHEMA_VERSION + 1))
    tables = await admin.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
    )
    assert {"botkit_turns", "botkit_locks", "botkit_inbox"} <= {t[0] for t in tables}

    async with await PostgresStore.open(url) as store:
        assert [t.content for t in await store.recent("c", 5)] == ["remember me"]
    assert await admin.fetch(f"SELECT version, applied FROM {schema}.botkit_schema") == applied


async def test_workers_starting_together_migrate_once(url: str, admin: asyncpg.Connection) -> None:
    stores = await asyncio.gather(*(PostgresStore.open(url) for _ in range(4)))
    try:
        await stores[0].append("c", [turn("one")])
        assert [t.content for t in await stores[3].recent("c", 5)] == ["one"]
    finally:
        for store in stores:
            await store.aclose()
    versions = await admin.fetch(f"SELECT version FROM {schema_of(url)}.botkit_schema")
    assert sorted(v[0] for v in versions) == list(range(1, SCHEMA_VERSION + 1))


async def test_a_schema_from_a_newer_botkit_is_refused(url: str, admin: asyncpg.Connection) -> None:
    async with await PostgresStore.open(url):
        pass
    await admin.execute(f"INSERT INTO {schema_of(url)}.botkit_schema (version) VALUES (99)")
    with pytest.raises(StoreError, match="written by a newer botkit .schema 99"):
        await PostgresStore.open(url)


@pytest.mark.usefixtures("url")  # skips, or fails under CI, without a server
async def test_a_search_path_naming_no_schema_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no schema of the search_path exists"):
        await open_store(in_schema(POSTGRES_URL, "no_such_schema_here"), home=tmp_path)


async def test_an_unreachable_server_is_one_clear_error_without_the_password(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(StoreError) as caught:
        await open_store(f"postgresql://bot:hunter2@127.0.0.1:{port}/support", home=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"PostgreSQL store at 127.0.0.1:{port}/support: cannot connect")
    assert "hunter2" not in message


async def test_errors_while_serving_name_the_database_but_never_the_password(
    url: str, admin: asyncpg.Connection
) -> None:
    secret_url, password = with_password(url)
    async with await PostgresStore.open(secret_url) as store:
        await admin.execute(f"DROP TABLE {schema_of(url)}.botkit_records")
        with pytest.raises(StoreError) as caught:
            await store.get_record("k")
    message = str(caught.value)
    where = urlsplit(POSTGRES_URL)
    assert f"PostgreSQL store at {where.hostname}:{where.port or 5432}{where.path}: " in message
    assert "botkit_records" in message and password not in message


@pytest.mark.usefixtures("url")  # skips, or fails under CI, without a server
async def test_a_missing_database_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    parts = urlsplit(POSTGRES_URL)
    missing, password = with_password(urlunsplit(parts._replace(path="/botkit_no_such_database")))
    with pytest.raises(StoreError, match="botkit_no_such_database") as caught:
        await open_store(missing, home=tmp_path)
    assert password not in str(caught.value)


async def test_a_dropped_connection_recovers(url: str, admin: asyncpg.Connection) -> None:
    name = f"botkit-{schema_of(url)}"
    async with (
        await PostgresStore.open(named(url, name)) as store,
        await PostgresStore.open(url) as other,
    ):
        await store.append("c", [turn("before")])
        async with store.subscribe("topic") as subscription:
            dropped = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1",
                name,
            )
            assert dropped >= 2  # the pool's connection and the listening one
            # Reads are tried again on a fresh connection; writes then go through.
            assert [t.content for t in await store.recent("c", 5)] == ["before"]
            await store.append("c", [turn("after")])
            assert [t.content for t in await other.recent("c", 5)] == ["before", "after"]
            # The listening connection comes back: another worker's notice arrives again.
            async with asyncio.timeout(10):
                while True:
                    await other.publish("topic")
                    if await subscription.wait(0.5):
                        break


async def test_a_busy_pool_makes_a_call_wait_at_most_its_timeout(
    url: str, admin: asyncpg.Connection, tmp_path: Path
) -> None:
    name = f"botkit-{schema_of(url)}"
    async with await open_store(
        named(url, name), home=tmp_path, pool_size=1, pool_timeout=0.2
    ) as store:
        await store.put_record("k", {"n": 1})
        # Another transaction holds the row, so a write to it holds the only connection.
        async with admin.transaction():
            await admin.execute(
                f"SELECT 1 FROM {schema_of(url)}.botkit_records WHERE key = 'k' FOR UPDATE"
            )
            blocked = asyncio.create_task(store.put_record("k", {"n": 2}))
            await until_waiting(admin, name)
            with pytest.raises(StoreError, match="all 1 of the pool are busy"):
                await store.get_record("other")
        await blocked
        assert await store.get_record("k") == {"n": 2}


async def test_text_postgresql_cannot_hold_is_kept_exactly_and_readable(
    url: str, admin: asyncpg.Connection
) -> None:
    async with await PostgresStore.open(url) as store:
        await store.append("c", [turn("a\x00b"), turn("plain")])
        assert [t.content for t in await store.recent("c", 5)] == ["a\x00b", "plain"]
        await store.put_record("r", {"text": "a\x00b"})
        assert await store.get_record("r") == {"text": "a\x00b"}
    rows = await admin.fetch(f"SELECT content, raw FROM {schema_of(url)}.botkit_turns ORDER BY seq")
    assert [tuple(row) for row in rows] == [("a\ufffdb", b"a\x00b"), ("plain", None)]


async def test_usage_added_at_once_by_many_workers_is_all_counted(url: str) -> None:
    def usage(user: str) -> UsageRecord:
        return UsageRecord("2026-11-01", "shop", user, f"shop/web/{user}", "m", 10, 1)

    stores = [await PostgresStore.open(url) for _ in range(2)]
    try:
        # Overlapping rows in different orders: the writes must neither deadlock nor lose.
        batches = [
            [usage(u) for u in ("ann", "bob", "cy")[:: 1 if n % 2 else -1]] for n in range(20)
        ]
        await asyncio.gather(*(stores[n % 2].add_usage(b) for n, b in enumerate(batches)))
        assert await stores[0].tokens_used(day="2026-11-01", bot="shop") == 20 * 3 * 11
        assert await stores[1].tokens_used(day="2026-11-01", bot="shop", user="bob") == 20 * 11
    finally:
        for store in stores:
            await store.aclose()


async def test_finished_inbox_items_are_kept_only_to_recognise_a_redelivery(
    url: str, admin: asyncpg.Connection
) -> None:
    async with await PostgresStore.open(url) as store:
        plain = await store.inbox_add(channel="web", conversation="c", payload={"t": "x"})
        event = await store.inbox_add(channel="slack", conversation="c", payload={}, dedupe="E1")
        assert plain is not None and event is not None
        await store.inbox_done(plain)
        await store.inbox_done(event)
    rows = await admin.fetch(f"SELECT dedupe, payload, done FROM {schema_of(url)}.botkit_inbox")
    assert [tuple(row) for row in rows] == [("E1", "{}", True)]


async def test_deployments_in_other_schemas_share_nothing(url: str, other_url: str) -> None:
    async with await PostgresStore.open(url) as a, await PostgresStore.open(other_url) as b:
        await a.append("c", [turn("for a")])
        assert await b.recent("c", 5) == []
        async with b.subscribe("topic") as subscription:
            await a.publish("topic")
            assert await subscription.wait(0.3) is False


async def test_an_append_under_way_when_the_lease_runs_out_is_ordered_before_the_next_holder(
    url: str, admin: asyncpg.Connection
) -> None:
    name = f"botkit-{schema_of(url)}"
    async with (
        await PostgresStore.open(named(url, name), lease=LEASE) as a,
        await PostgresStore.open(url, lease=LEASE) as b,
    ):
        held = a.lock("c")
        lease = await held.__aenter__()
        await a.append("c", [turn("first")], lease=lease)
        stall(a)
        seen: list[str] = []

        async def take_over() -> None:
            async with b.lock("c") as newer:
                seen.extend(t.content for t in await b.recent("c", 10))
                await b.append("c", [turn("b took over")], lease=newer)

        # Hold a's append up after it passed the fence (the conversation's row is locked).
        async with admin.transaction():
            await admin.execute(
                f"SELECT 1 FROM {schema_of(url)}.botkit_conversations WHERE key = 'c' FOR UPDATE"
            )
            late = asyncio.create_task(a.append("c", [turn("a, under way")], lease=lease))
            await until_waiting(admin, name)
            taking_over = asyncio.create_task(take_over())
            await asyncio.sleep(LEASE * 2)  # long past a's lease: b would have taken over
        await late
        await asyncio.wait_for(taking_over, 5)
        # b got the lock only once a's append was in: never a write of a's after b's start.
        assert seen == ["first", "a, under way"]
        assert [t.content for t in await b.recent("c", 10)] == [*seen, "b took over"]
