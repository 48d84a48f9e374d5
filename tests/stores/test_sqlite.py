"""What only the SQLite store promises: a file that survives restarts and is shared."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from botkit.errors import StoreError
from botkit.messages import Turn
from botkit.stores import open_store, sqlite_path
from botkit.stores.sqlite import SqliteStore


def test_urls_are_relative_to_the_home_unless_absolute(tmp_path: Path) -> None:
    assert sqlite_path("sqlite:///.botkit/b.db", tmp_path) == tmp_path / ".botkit" / "b.db"
    assert sqlite_path("sqlite:////var/lib/b.db", tmp_path) == Path("/var/lib/b.db")


async def test_default_location_is_created_under_the_home(tmp_path: Path) -> None:
    async with await open_store("sqlite:///.botkit/botkit.db", home=tmp_path):
        pass
    assert (tmp_path / ".botkit" / "botkit.db").is_file()


async def test_history_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    async with await SqliteStore.open(path) as store:
        await store.append("c", [Turn("user", "remember me", time.time(), 5)])
    async with await SqliteStore.open(path) as store:
        assert [t.content for t in await store.recent("c", 5)] == ["remember me"]


async def test_uses_wal_mode(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "b.db"):
        pass
    with sqlite3.connect(tmp_path / "b.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_an_append_is_one_insert(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "b.db") as store:
        await store.append("c", [Turn("user", "old", time.time(), 1)] * 20)
        statements: list[str] = []
        await store._db.set_trace_callback(statements.append)
        await store.append("c", [Turn("user", "q", time.time(), 1), Turn("assistant", "a", 0, 1)])
        await store._db.set_trace_callback(None)
    writes = [s for s in statements if s.split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}]
    assert len(writes) == 1 and writes[0].startswith("INSERT")


def test_two_processes_share_the_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    script = textwrap.dedent(
        f"""
        import asyncio, sys, time
        from pathlib import Path
        from botkit.messages import Turn
        from botkit.stores.sqlite import SqliteStore

        async def main():
            async with await SqliteStore.open(Path({str(path)!r})) as store:
                for i in range(50):
                    await store.append(sys.argv[1], [Turn("user", str(i), time.time(), 1)])

        asyncio.run(main())
        """
    )
    workers = [subprocess.Popen([sys.executable, "-c", script, f"w{i}"]) for i in range(2)]
    assert [w.wait(timeout=60) for w in workers] == [0, 0]
    with sqlite3.connect(path) as db:
        counts = dict(db.execute("SELECT conversation, COUNT(*) FROM turns GROUP BY 1"))
    assert counts == {"w0": 50, "w1": 50}


async def test_a_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    path.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(StoreError, match=r"b\.db: the file is not an SQLite database"):
        await SqliteStore.open(path)


async def test_a_locked_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    async with await SqliteStore.open(path, busy_timeout=0.1) as store:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreError, match="locked by another process"):
                await store.append("c", [Turn("user", "x", time.time(), 1)])
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        await store.append("c", [Turn("user", "after", time.time(), 1)])
        assert len(await store.recent("c", 5)) == 1


async def test_an_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot open the SQLite store"):
        await SqliteStore.open(blocker / "b.db")


async def test_concurrent_appends_from_one_process(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "b.db") as store:
        await asyncio.gather(
            *(store.append(f"c{i}", [Turn("user", "x", time.time(), 1)]) for i in range(100))
        )
        assert all([len(await store.recent(f"c{i}", 5)) == 1 for i in range(100)])


def test_two_processes_claiming_the_same_events_never_both_win(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    script = textwrap.dedent(
        f"""
        import asyncio
        from pathlib import Path
        from botkit.stores.sqlite import SqliteStore

        async def main():
            async with await SqliteStore.open(Path({str(path)!r})) as store:
                won = [await store.claim(f"event:{{i}}", ttl=60) for i in range(200)]
                print(sum(won))

        asyncio.run(main())
        """
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    wins = [int(w.communicate(timeout=60)[0]) for w in workers]
    assert sum(wins) == 200


async def test_a_daily_budget_reads_one_running_total(tmp_path: Path) -> None:
    # The audit: tokens_used summed the day's rows on every message (17.7 ms at 100,000).
    from botkit.stores.base import UsageRecord

    async with await SqliteStore.open(tmp_path / "b.db") as store:
        records = [
            UsageRecord("2026-11-29", "shop", f"u{i % 50}", f"c{i}", "m", 10, 5)
            for i in range(2_000)
        ]
        await store.add_usage(records)
        await store.add_usage([UsageRecord("2026-11-29", "shop", "u1", "c1", "m", 1, 1)])
        assert await store.tokens_used(day="2026-11-29", bot="shop") == 2_000 * 15 + 2
        assert await store.tokens_used(day="2026-11-29", bot="shop", user="u1") == 40 * 15 + 2
        await store.erase_usage(user="u1")  # forgetting a user keeps the bot's tokens
        assert await store.tokens_used(day="2026-11-29", bot="shop") == 2_000 * 15 + 2
        assert await store.tokens_used(day="2026-11-29", bot="shop", user="u1") == 0
        plan = await store._rows(
            "EXPLAIN QUERY PLAN SELECT tokens FROM usage_by_bot WHERE day = ? AND bot = ?",
            ("2026-11-29", "shop"),
        )
    assert "USING PRIMARY KEY" in str(plan) or "USING INDEX" in str(plan)


async def test_an_old_file_gets_its_running_totals_when_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    async with await SqliteStore.open(path) as store:
        from botkit.stores.base import UsageRecord

        await store.add_usage([UsageRecord("2026-11-28", "shop", "ann", "c", "m", 7, 3)])
    with sqlite3.connect(path) as db:  # as a file written before the totals existed
        db.executescript(
            "DROP TRIGGER usage_added; DROP TRIGGER usage_changed; DROP TRIGGER usage_removed;"
            "DROP TABLE usage_by_bot; DROP TABLE usage_by_user; PRAGMA user_version = 3;"
        )
    async with await SqliteStore.open(path) as store:
        assert await store.tokens_used(day="2026-11-28", bot="shop") == 10
        assert await store.tokens_used(day="2026-11-28", bot="shop", user="ann") == 10
