"""The default store: one embedded SQLite file, shared safely by several processes.

WAL mode lets readers and one writer work at once; `busy_timeout` makes a second
process wait for the lock instead of failing. Every append is one INSERT.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import aiosqlite

from botkit.errors import StoreError
from botkit.messages import Turn
from botkit.stores.base import ConversationStore

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
"""


@cache
def _insert_sql(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?)"] * rows)
    return f"INSERT INTO turns (conversation, role, content, at, tokens) VALUES {values}"


class SqliteStore(ConversationStore):
    """Conversations in an SQLite file; open it with `await SqliteStore.open(path)`."""

    def __init__(self, db: aiosqlite.Connection, path: Path, *, busy_timeout: float) -> None:
        self._db = db
        self.path = path
        self._busy_timeout = busy_timeout

    @classmethod
    async def open(cls, path: Path, *, busy_timeout: float = 5.0) -> SqliteStore:
        """Open (creating if needed) the file; wait up to `busy_timeout` s for another writer."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot open the SQLite store {path}: {err}") from err
        store = cls(db, path, busy_timeout=busy_timeout)
        try:
            await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            await db.execute("PRAGMA journal_mode = WAL")
            # NORMAL is safe from corruption in WAL mode; it only skips an fsync per commit.
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.executescript(_SCHEMA)
        except sqlite3.Error as err:
            await db.close()
            raise store._error(err) from err
        return store

    async def recent(self, key: str, limit: int) -> list[Turn]:
        if limit <= 0:
            return []
        try:
            async with self._db.execute(
                "SELECT role, content, at, tokens FROM turns"
                " WHERE conversation = ? ORDER BY id DESC LIMIT ?",
                (key, limit),
            ) as cursor:
                rows = await cursor.fetchall()
        except sqlite3.Error as err:
            raise self._error(err) from err
        return [Turn(*row) for row in reversed(list(rows))]

    async def append(self, key: str, turns: Sequence[Turn]) -> None:
        if not turns:
            return
        params = [v for t in turns for v in (key, t.role, t.content, t.at, t.tokens)]
        try:
            await self._db.execute(_insert_sql(len(turns)), params)
        except sqlite3.Error as err:
            raise self._error(err) from err

    async def reset(self, key: str) -> None:
        try:
            await self._db.execute("DELETE FROM turns WHERE conversation = ?", (key,))
        except sqlite3.Error as err:
            raise self._error(err) from err

    async def aclose(self) -> None:
        await self._db.close()

    def _error(self, err: sqlite3.Error) -> StoreError:
        reason = str(err)
        if "locked" in reason or "busy" in reason:
            reason = f"the file is locked by another process (waited {self._busy_timeout:g} s)"
        elif isinstance(err, sqlite3.DatabaseError) and "not a database" in reason:
            reason = "the file is not an SQLite database (corrupt, or another kind of file)"
        return StoreError(f"SQLite store {self.path}: {reason}")
