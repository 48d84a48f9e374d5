"""The default store: one embedded SQLite file, shared safely by several processes.

WAL mode lets readers and one writer work at once; `busy_timeout` makes a second
process wait for the lock instead of failing. Every append is one INSERT.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import aiosqlite

from botkit.errors import StoreError
from botkit.messages import Turn
from botkit.stores.base import Store, UsageRecord, UsageTotal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY,
    conversation TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    at REAL NOT NULL,
    tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns (conversation, id);
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL,
    bot TEXT NOT NULL,
    user TEXT NOT NULL,
    conversation TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    PRIMARY KEY (day, bot, user, conversation, model)
);
CREATE TABLE IF NOT EXISTS records (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires REAL
);
"""
# Expired records are skipped when read and swept now and then, not on every write.
_SWEEP_EVERY = 1000


@cache
def _insert_sql(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?)"] * rows)
    return f"INSERT INTO turns (conversation, role, content, at, tokens) VALUES {values}"


def _try_open(path: Path) -> None:
    sqlite3.connect(path).close()


class SqliteStore(Store):
    """Conversations in an SQLite file; open it with `await SqliteStore.open(path)`."""

    def __init__(self, db: aiosqlite.Connection, path: Path, *, busy_timeout: float) -> None:
        self._db = db
        self.path = path
        self._busy_timeout = busy_timeout
        self._writes_until_sweep = 0

    @classmethod
    async def open(cls, path: Path, *, busy_timeout: float = 5.0) -> SqliteStore:
        """Open (creating if needed) the file; wait up to `busy_timeout` s for another writer."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Tried on a plain thread first: when aiosqlite's own open fails, its thread
            # reports its stop to the event loop later, possibly after the loop has
            # closed, and prints a second traceback ("Event loop is closed").
            await asyncio.to_thread(_try_open, path)
            db = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot open the SQLite store {path}: {err}") from err
        store = cls(db, path, busy_timeout=busy_timeout)
        try:
            await store._initialize()
        except sqlite3.Error as err:
            await db.close()
            raise store._error(err) from err
        return store

    async def _initialize(self) -> None:
        await self._db.execute_fetchall(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        # NORMAL is safe from corruption in WAL mode; it only skips an fsync per commit.
        await self._db.execute_fetchall("PRAGMA synchronous = NORMAL")
        # Switching to WAL does not wait on the busy timeout when two processes open a
        # new file at once, so try again until it has passed.
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                await self._db.execute_fetchall("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.02)
        await self._db.executescript(_SCHEMA)

    async def recent(self, key: str, limit: int) -> list[Turn]:
        if limit <= 0:
            return []
        rows = await self._rows(
            "SELECT role, content, at, tokens FROM turns"
            " WHERE conversation = ? ORDER BY id DESC LIMIT ?",
            (key, limit),
        )
        return [Turn(*row) for row in reversed(rows)]

    async def append(self, key: str, turns: Sequence[Turn]) -> None:
        if turns:
            params = [v for t in turns for v in (key, t.role, t.content, t.at, t.tokens)]
            await self._rows(_insert_sql(len(turns)), params)

    async def reset(self, key: str) -> None:
        await self._rows("DELETE FROM turns WHERE conversation = ?", (key,))

    async def get_record(self, key: str) -> dict[str, Any] | None:
        rows = await self._rows(
            "SELECT value FROM records WHERE key = ? AND (expires IS NULL OR expires > ?)",
            (key, time.time()),
        )
        return dict(json.loads(rows[0][0])) if rows else None

    async def put_record(
        self, key: str, value: dict[str, Any], *, ttl: float | None = None
    ) -> None:
        await self._write(
            "INSERT OR REPLACE INTO records (key, value, expires) VALUES (?, ?, ?)",
            (key, json.dumps(value), None if ttl is None else time.time() + ttl),
        )

    async def delete_record(self, key: str) -> bool:
        sql = "DELETE FROM records WHERE key = ? AND (expires IS NULL OR expires > ?) RETURNING 1"
        return bool(await self._write(sql, (key, time.time())))

    async def claim(self, key: str, *, ttl: float) -> bool:
        now = time.time()
        # One statement, so two processes racing for the same key cannot both win.
        claimed = await self._write(
            "INSERT INTO records (key, value, expires) VALUES (?, '{}', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = '{}', expires = excluded.expires"
            " WHERE records.expires IS NOT NULL AND records.expires <= ? RETURNING 1",
            (key, now + ttl, now),
        )
        return bool(claimed)

    async def add_usage(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return
        rows = [
            (r.day, r.bot, r.user, r.conversation, r.model, r.prompt_tokens, r.completion_tokens)
            for r in records
        ]
        try:
            await self._db.executemany(
                "INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (day, bot, user, conversation, model) DO UPDATE SET"
                " prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
                " completion_tokens = completion_tokens + excluded.completion_tokens",
                rows,
            )
        except sqlite3.Error as err:
            raise self._error(err) from err

    async def usage_totals(self, *, since: str, bot: str | None = None) -> list[UsageTotal]:
        rows = await self._rows(
            "SELECT day, bot, model, SUM(prompt_tokens), SUM(completion_tokens) FROM usage"
            " WHERE day >= ? AND (? IS NULL OR bot = ?) GROUP BY day, bot, model"
            " ORDER BY day, bot, model",
            (since, bot, bot),
        )
        return [UsageTotal(*row) for row in rows]

    async def tokens_used(self, *, day: str, bot: str, user: str | None = None) -> int:
        rows = await self._rows(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM usage"
            " WHERE day = ? AND bot = ? AND (? IS NULL OR user = ?)",
            (day, bot, user, user),
        )
        return int(rows[0][0])

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one statement to completion in a single trip to the database thread.

        Finishing every statement matters: an unread cursor would hold a read lock.
        """
        try:
            return list(await self._db.execute_fetchall(sql, params))
        except sqlite3.Error as err:
            raise self._error(err) from err

    async def _write(self, sql: str, params: Sequence[Any]) -> list[Any]:
        rows = await self._rows(sql, params)
        self._writes_until_sweep -= 1
        if self._writes_until_sweep <= 0:
            self._writes_until_sweep = _SWEEP_EVERY
            await self._rows("DELETE FROM records WHERE expires <= ?", (time.time(),))
        return rows

    async def aclose(self) -> None:
        await self._db.close()

    def _error(self, err: sqlite3.Error) -> StoreError:
        reason = str(err)
        if "locked" in reason or "busy" in reason:
            reason = f"the file is locked by another process (waited {self._busy_timeout:g} s)"
        elif isinstance(err, sqlite3.DatabaseError) and "not a database" in reason:
            reason = "the file is not an SQLite database (corrupt, or another kind of file)"
        return StoreError(f"SQLite store {self.path}: {reason}")
