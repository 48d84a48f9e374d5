"""The default store: one embedded SQLite file, shared safely by several processes.

WAL mode lets readers and one writer work at once; `busy_timeout` makes a second
process wait for the lock instead of failing. Every change is one statement (SQLite
runs each atomically) or one transaction run whole on the database thread, so
statements from concurrent tasks on the one connection never interleave inside a
transaction. The schema is versioned (`PRAGMA
user_version`) and upgraded on open by ordered migrations.

Another process's changes are not announced: `Feed.wait` returns every half second
so readers look again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from botkit.errors import StoreError
from botkit.messages import Feedback, Handoff, Outcome, Turn
from botkit.stores.base import (
    DEFAULT_LEASE,
    INBOX_TOPIC,
    InboxItem,
    Lease,
    LeaseLost,
    Store,
    UsageRecord,
    UsageTotal,
)

MIGRATIONS: tuple[str, ...] = (
    # 1: conversations, usage and records (botkit 0.1)
    """
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
    """,
    # 2: what many workers share: message ids on turns (whose ids now never repeat, so a
    # reader's cursor survives a reset), locks, the inbox, rates, handoffs
    """
    CREATE TABLE turns_2 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation TEXT NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        at REAL NOT NULL,
        tokens INTEGER NOT NULL,
        message_id TEXT,
        reply_to TEXT,
        kind TEXT,
        name TEXT
    );
    INSERT INTO turns_2 (id, conversation, role, content, at, tokens)
        SELECT id, conversation, role, content, at, tokens FROM turns;
    DROP TABLE turns;
    ALTER TABLE turns_2 RENAME TO turns;
    CREATE INDEX turns_by_conversation ON turns (conversation, id);
    CREATE TABLE locks (key TEXT PRIMARY KEY, token TEXT NOT NULL, expires REAL NOT NULL);
    CREATE TABLE inbox (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        conversation TEXT NOT NULL,
        payload TEXT NOT NULL,
        owner TEXT,
        expires REAL NOT NULL,
        attempts INTEGER NOT NULL,
        dedupe TEXT UNIQUE,
        done INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX inbox_ready ON inbox (channel, expires) WHERE done = 0;
    CREATE TABLE rates (key TEXT PRIMARY KEY, tat REAL NOT NULL);
    CREATE TABLE handoffs (
        id TEXT PRIMARY KEY,
        conversation TEXT NOT NULL,
        bot TEXT NOT NULL,
        state TEXT NOT NULL,
        desk_ref TEXT,
        created REAL NOT NULL,
        version INTEGER NOT NULL,
        data TEXT NOT NULL
    );
    CREATE UNIQUE INDEX handoffs_open ON handoffs (conversation) WHERE state != 'resolved';
    CREATE INDEX handoffs_by_desk ON handoffs (desk_ref);
    """,
    # 3: what became of each message and customers' votes, for reports, transcripts and
    # erasing one person's data; handoffs found by conversation, to erase them too
    """
    CREATE TABLE outcomes (
        bot TEXT NOT NULL,
        channel TEXT NOT NULL,
        conversation TEXT NOT NULL,
        user TEXT NOT NULL,
        message_id TEXT NOT NULL,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        question TEXT NOT NULL,
        faq TEXT,
        faq_score REAL,
        seconds REAL NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        model TEXT,
        cost REAL,
        error TEXT,
        PRIMARY KEY (conversation, message_id)
    );
    CREATE INDEX outcomes_by_time ON outcomes (bot, at);
    CREATE INDEX outcomes_by_user ON outcomes (user);
    CREATE TABLE feedback (
        bot TEXT NOT NULL,
        channel TEXT NOT NULL,
        conversation TEXT NOT NULL,
        message_id TEXT NOT NULL,
        user TEXT NOT NULL,
        score INTEGER NOT NULL,
        comment TEXT,
        at REAL NOT NULL,
        PRIMARY KEY (conversation, message_id)
    );
    CREATE INDEX feedback_by_time ON feedback (bot, at);
    CREATE INDEX feedback_by_user ON feedback (user);
    CREATE INDEX handoffs_by_conversation ON handoffs (conversation);
    """,
    # 4: running totals of the day's tokens per bot and per user, kept by triggers, so a
    # daily budget's check is one row whatever the day's volume (it summed the day's rows)
    """
    CREATE TABLE usage_by_bot (
        day TEXT NOT NULL, bot TEXT NOT NULL, tokens INTEGER NOT NULL, PRIMARY KEY (day, bot)
    );
    CREATE TABLE usage_by_user (
        day TEXT NOT NULL,
        bot TEXT NOT NULL,
        user TEXT NOT NULL,
        tokens INTEGER NOT NULL,
        PRIMARY KEY (day, bot, user)
    );
    INSERT INTO usage_by_bot
        SELECT day, bot, SUM(prompt_tokens + completion_tokens) FROM usage GROUP BY day, bot;
    INSERT INTO usage_by_user
        SELECT day, bot, user, SUM(prompt_tokens + completion_tokens) FROM usage
        GROUP BY day, bot, user;
    CREATE TRIGGER usage_added AFTER INSERT ON usage BEGIN
        INSERT INTO usage_by_bot VALUES
            (NEW.day, NEW.bot, NEW.prompt_tokens + NEW.completion_tokens)
            ON CONFLICT (day, bot) DO UPDATE SET tokens = tokens + excluded.tokens;
        INSERT INTO usage_by_user VALUES
            (NEW.day, NEW.bot, NEW.user, NEW.prompt_tokens + NEW.completion_tokens)
            ON CONFLICT (day, bot, user) DO UPDATE SET tokens = tokens + excluded.tokens;
    END;
    CREATE TRIGGER usage_changed AFTER UPDATE ON usage BEGIN
        UPDATE usage_by_bot SET tokens = tokens - OLD.prompt_tokens - OLD.completion_tokens
            WHERE day = OLD.day AND bot = OLD.bot;
        UPDATE usage_by_user SET tokens = tokens - OLD.prompt_tokens - OLD.completion_tokens
            WHERE day = OLD.day AND bot = OLD.bot AND user = OLD.user;
        INSERT INTO usage_by_bot VALUES
            (NEW.day, NEW.bot, NEW.prompt_tokens + NEW.completion_tokens)
            ON CONFLICT (day, bot) DO UPDATE SET tokens = tokens + excluded.tokens;
        INSERT INTO usage_by_user VALUES
            (NEW.day, NEW.bot, NEW.user, NEW.prompt_tokens + NEW.completion_tokens)
            ON CONFLICT (day, bot, user) DO UPDATE SET tokens = tokens + excluded.tokens;
        DELETE FROM usage_by_user
            WHERE day = OLD.day AND bot = OLD.bot AND user = OLD.user AND tokens <= 0;
    END;
    CREATE TRIGGER usage_removed AFTER DELETE ON usage BEGIN
        UPDATE usage_by_bot SET tokens = tokens - OLD.prompt_tokens - OLD.completion_tokens
            WHERE day = OLD.day AND bot = OLD.bot;
        UPDATE usage_by_user SET tokens = tokens - OLD.prompt_tokens - OLD.completion_tokens
            WHERE day = OLD.day AND bot = OLD.bot AND user = OLD.user;
        DELETE FROM usage_by_user
            WHERE day = OLD.day AND bot = OLD.bot AND user = OLD.user AND tokens <= 0;
    END;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

# Expired rows are skipped when read and swept now and then, not on every write.
_SWEEP_EVERY = 1000
_T = TypeVar("_T")
_DONE_KEPT = 24 * 3600.0
"""Finished inbox items are kept this long, so a platform's re-delivery is recognised."""
_TURN_COLUMNS = "role, content, at, tokens, message_id, reply_to, kind, name"
_OUTCOME_FIELDS = tuple(f.name for f in dataclasses.fields(Outcome))
_FEEDBACK_FIELDS = tuple(f.name for f in dataclasses.fields(Feedback))
_OUTCOME_COLUMNS = ", ".join(_OUTCOME_FIELDS)
_FEEDBACK_COLUMNS = ", ".join(_FEEDBACK_FIELDS)


@cache
def _insert_sql(rows: int, fenced: bool) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
    columns = f"conversation, {_TURN_COLUMNS}"
    if not fenced:
        return f"INSERT INTO turns ({columns}) VALUES {values}"
    # One statement: the lease is checked and the turns written atomically.
    return (
        f"INSERT INTO turns ({columns}) SELECT * FROM (VALUES {values})"
        " WHERE EXISTS (SELECT 1 FROM locks WHERE key = ? AND token = ?) RETURNING id"
    )


_NEWEST = f"SELECT {_TURN_COLUMNS} FROM turns WHERE conversation = ? ORDER BY id DESC LIMIT ?"


def _newest_within(db: sqlite3.Connection, key: str, limit: int, max_tokens: int) -> list[Any]:
    """The newest turns, read one by one until they pass `max_tokens`: the older ones are
    never read. (A window function summing the tokens in SQL costs more than reading
    every row: it sorts twice. 200 turns: 380 µs against 160.)"""
    cursor = db.execute(_NEWEST, (key, limit))
    try:
        rows, used = [], 0
        for row in cursor:
            rows.append(row)
            used += row[3]  # tokens
            if used > max_tokens:
                break
        return rows
    finally:
        cursor.close()  # an unfinished statement would hold a read lock


def _turn_params(key: str, turns: Sequence[Turn]) -> list[Any]:
    return [
        v
        for t in turns
        for v in (key, t.role, t.content, t.at, t.tokens, t.id, t.reply_to, t.kind, t.name)
    ]


def _try_open(path: Path) -> None:
    sqlite3.connect(path).close()


class SqliteStore(Store):
    """Everything in one SQLite file; open it with `await SqliteStore.open(path)`."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        path: Path,
        *,
        busy_timeout: float,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        super().__init__(lease=lease)
        self._db = db
        self.path = path
        self._busy_timeout = busy_timeout
        self._writes_until_sweep = 0
        self.worker = secrets.token_hex(8)
        self.poll = 0.5

    @classmethod
    async def open(
        cls, path: Path, *, busy_timeout: float = 5.0, lease: float = DEFAULT_LEASE
    ) -> SqliteStore:
        """Open (creating or upgrading if needed) the file; wait up to `busy_timeout` s for
        another writer."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Tried on a plain thread first: when aiosqlite's own open fails, its thread
            # reports its stop to the event loop later, possibly after the loop has
            # closed, and prints a second traceback ("Event loop is closed").
            await asyncio.to_thread(_try_open, path)
            db = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot open the SQLite store {path}: {err}") from err
        store = cls(db, path, busy_timeout=busy_timeout, lease=lease)
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
        await self._migrate()

    async def _migrate(self) -> None:
        """Bring the schema to `SCHEMA_VERSION`, in one immediate transaction, so two
        processes opening an old file at once upgrade it once."""
        version = int(list(await self._db.execute_fetchall("PRAGMA user_version"))[0][0])
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"SQLite store {self.path}: written by a newer botkit (schema {version}, "
                f"this one knows {SCHEMA_VERSION}); upgrade botkit"
            )
        # Statement by statement: executescript would commit the open transaction first.
        # The version is read again inside the transaction: another process may have won.
        await self._db.execute_fetchall("BEGIN IMMEDIATE")
        try:
            version = int(list(await self._db.execute_fetchall("PRAGMA user_version"))[0][0])
            for number in range(version, SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[number]):
                    await self._db.execute_fetchall(statement)
            await self._db.execute_fetchall(f"PRAGMA user_version = {SCHEMA_VERSION}")
            await self._db.execute_fetchall("COMMIT")
        except BaseException:
            await self._db.execute_fetchall("ROLLBACK")
            raise

    # --- conversations ---------------------------------------------------------------

    async def recent(self, key: str, limit: int, *, max_tokens: int | None = None) -> list[Turn]:
        if limit <= 0:
            return []
        if max_tokens is None:
            rows = await self._rows(_NEWEST, (key, limit))
        else:
            rows = await self._in_thread(lambda db: _newest_within(db, key, limit, max_tokens))
        return [Turn(*row) for row in reversed(rows)]

    async def append(self, key: str, turns: Sequence[Turn], *, lease: Lease | None = None) -> None:
        if not turns:
            return
        if lease is None:
            await self._rows(_insert_sql(len(turns), False), _turn_params(key, turns))
        elif not await self._rows(
            _insert_sql(len(turns), True), [*_turn_params(key, turns), key, lease.token]
        ):
            raise LeaseLost(f"the lock of {key} has passed to another worker")

    async def _append_and_unlock(self, key: str, turns: Sequence[Turn], lease: Lease) -> None:
        insert = _insert_sql(len(turns), True)
        params = [*_turn_params(key, turns), key, lease.token]

        def last_write(db: sqlite3.Connection) -> None:
            if turns and not db.execute(insert, params).fetchall():
                raise LeaseLost(f"the lock of {key} has passed to another worker")
            db.execute("DELETE FROM locks WHERE key = ? AND token = ?", (key, lease.token))

        await self._transaction(last_write)

    async def reset(self, key: str) -> None:
        await self._rows("DELETE FROM turns WHERE conversation = ?", (key,))

    async def cursor(self, key: str) -> int:
        rows = await self._rows(
            "SELECT COALESCE(MAX(id), 0) FROM turns WHERE conversation = ?", (key,)
        )
        return int(rows[0][0])

    async def turns_since(self, key: str, cursor: int) -> tuple[int, list[Turn]]:
        rows = await self._rows(
            f"SELECT id, {_TURN_COLUMNS} FROM turns WHERE conversation = ? AND id > ? ORDER BY id",
            (key, cursor),
        )
        return (rows[-1][0] if rows else cursor), [Turn(*row[1:]) for row in rows]

    async def _try_lock(self, lease: Lease) -> bool:
        now = time.time()
        taken = await self._write(
            "INSERT INTO locks (key, token, expires) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires = excluded.expires"
            " WHERE locks.expires <= ? RETURNING 1",
            (lease.key, lease.token, now + self.lease, now),
        )
        return bool(taken)

    async def _renew_lock(self, lease: Lease) -> bool:
        renewed = await self._rows(
            "UPDATE locks SET expires = ? WHERE key = ? AND token = ? RETURNING 1",
            (time.time() + self.lease, lease.key, lease.token),
        )
        return bool(renewed)

    async def _unlock(self, lease: Lease) -> None:
        await self._rows("DELETE FROM locks WHERE key = ? AND token = ?", (lease.key, lease.token))

    # --- records -----------------------------------------------------------------------

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

    # --- usage -------------------------------------------------------------------------

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
        params: tuple[str, ...]
        if user is None:
            sql, params = "SELECT tokens FROM usage_by_bot WHERE day = ? AND bot = ?", (day, bot)
        else:
            sql = "SELECT tokens FROM usage_by_user WHERE day = ? AND bot = ? AND user = ?"
            params = (day, bot, user)
        rows = await self._rows(sql, params)
        return int(rows[0][0]) if rows else 0

    # --- rates -------------------------------------------------------------------------

    async def take_rate(
        self, key: str, cost: float, *, rate: float, burst: float, max_wait: float
    ) -> float:
        now, step, window = time.time(), cost / rate, burst / rate
        # GCRA in one statement: a key seen for the first time starts from now.
        rows = await self._write(
            "INSERT INTO rates (key, tat) SELECT ?, ? WHERE ? <= ?"
            " ON CONFLICT (key) DO UPDATE SET tat = max(rates.tat, ?) + ?"
            " WHERE max(rates.tat, ?) + ? - ? - ? <= ? RETURNING tat",
            (key, now + step, step - window, max_wait, now, step, now, step, window, now, max_wait),
        )
        if rows:
            return max(0.0, float(rows[0][0]) - window - now)
        held = await self._rows("SELECT tat FROM rates WHERE key = ?", (key,))
        tat = max(float(held[0][0]), now) if held else now
        return max(0.0, tat + step - window - now)

    # --- the inbox ---------------------------------------------------------------------

    async def inbox_add(
        self,
        *,
        channel: str,
        conversation: str,
        payload: dict[str, Any],
        dedupe: str | None = None,
        owned: bool = True,
    ) -> InboxItem | None:
        rows = await self._write(
            "INSERT INTO inbox (channel, conversation, payload, owner, expires, attempts, dedupe)"
            " VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT (dedupe) DO NOTHING RETURNING id",
            (
                channel,
                conversation,
                json.dumps(payload),
                self.worker if owned else None,
                time.time() + self.lease if owned else 0.0,
                dedupe,
            ),
        )
        if not rows:
            return None
        item = InboxItem(str(rows[0][0]), channel, conversation, payload)
        if owned:
            self._hold(item)
        else:
            await self.publish(INBOX_TOPIC)
        return item

    async def inbox_take(self, channels: Sequence[str], *, limit: int = 20) -> list[InboxItem]:
        if not channels:
            return []
        now = time.time()
        marks = ", ".join("?" * len(channels))
        where = f"done = 0 AND expires <= ? AND channel IN ({marks})"
        # A read first: most polls find nothing, and a read takes no write lock.
        if not await self._rows(f"SELECT 1 FROM inbox WHERE {where} LIMIT 1", (now, *channels)):
            return []
        rows = await self._write(
            "UPDATE inbox SET owner = ?, expires = ?, attempts = attempts + 1"
            f" WHERE id IN (SELECT id FROM inbox WHERE {where} ORDER BY id LIMIT ?)"
            " RETURNING id, channel, conversation, payload, attempts",
            (self.worker, now + self.lease, now, *channels, limit),
        )
        items = [
            InboxItem(str(i), channel, conversation, json.loads(payload), attempts)
            for i, channel, conversation, payload, attempts in sorted(rows)
        ]
        return [self._hold(item) for item in items]

    async def inbox_done(self, item: InboxItem) -> None:
        self._release(item)
        await self._write(
            # Kept a day for its dedupe key alone: nothing of the message, nor whose it was.
            "UPDATE inbox SET done = 1, payload = '{}', conversation = '', owner = NULL,"
            " expires = ? WHERE id = ?",
            (time.time(), int(item.id)),
        )

    async def inbox_later(self, item: InboxItem, *, delay: float) -> None:
        self._release(item)
        await self._write(
            "UPDATE inbox SET owner = NULL, expires = ? WHERE id = ? AND done = 0",
            (time.time() + delay, int(item.id)),
        )
        await self.publish(INBOX_TOPIC)

    async def _renew_items(self, items: Sequence[InboxItem]) -> set[str]:
        rows = await self._rows(
            "UPDATE inbox SET expires = ? WHERE owner = ? AND done = 0 RETURNING id",
            (time.time() + self.lease, self.worker),
        )
        return {str(row[0]) for row in rows}

    # --- handoffs ----------------------------------------------------------------------

    async def handoff_open(self, handoff: Handoff) -> Handoff:
        opened = await self._write(
            "INSERT INTO handoffs (id, conversation, bot, state, desk_ref, created, version, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING 1",
            _handoff_row(handoff),
        )
        if opened:
            return handoff
        current = await self.handoff_current(handoff.conversation)
        if current is None:  # resolved in between: try again
            return await self.handoff_open(handoff)
        return current

    async def handoff_get(self, handoff_id: str) -> Handoff | None:
        return await self._handoff("id = ?", handoff_id)

    async def handoff_current(self, conversation: str) -> Handoff | None:
        return await self._handoff("conversation = ? AND state != 'resolved'", conversation)

    async def handoff_by_desk(self, desk_ref: str) -> Handoff | None:
        return await self._handoff("desk_ref = ? ORDER BY created DESC LIMIT 1", desk_ref)

    async def handoff_update(self, handoff: Handoff) -> Handoff | None:
        row = _handoff_row(handoff)
        updated = await self._write(
            "UPDATE handoffs SET state = ?, desk_ref = ?, version = version + 1, data = ?"
            " WHERE id = ? AND version = ? RETURNING version",
            (handoff.state, handoff.desk_ref, row[-1], handoff.id, handoff.version),
        )
        if not updated:
            return None
        return Handoff.from_json({**handoff.to_json(), "version": updated[0][0]})

    async def handoffs_open(self, bot: str | None = None) -> list[Handoff]:
        rows = await self._rows(
            "SELECT data, version FROM handoffs WHERE state != 'resolved'"
            " AND (? IS NULL OR bot = ?) ORDER BY created",
            (bot, bot),
        )
        return [_handoff(row) for row in rows]

    async def _handoff(self, where: str, value: str) -> Handoff | None:
        rows = await self._rows(f"SELECT data, version FROM handoffs WHERE {where}", (value,))
        return _handoff(rows[0]) if rows else None

    # --- outcomes and feedback ------------------------------------------------------------

    async def add_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        marks = ", ".join("?" * len(_OUTCOME_FIELDS))
        # Not dataclasses.astuple: it deep-copies every value, the costliest part of this.
        rows = [tuple(getattr(o, name) for name in _OUTCOME_FIELDS) for o in outcomes]
        try:
            await self._db.executemany(
                f"INSERT OR REPLACE INTO outcomes ({_OUTCOME_COLUMNS}) VALUES ({marks})", rows
            )
        except sqlite3.Error as err:
            raise self._error(err) from err

    async def outcomes(
        self,
        *,
        bot: str | None = None,
        since: float | None = None,
        until: float | None = None,
        user: str | None = None,
        conversation: str | None = None,
    ) -> list[Outcome]:
        where, params = _filters(bot, since, until, user, conversation)
        rows = await self._rows(
            f"SELECT {_OUTCOME_COLUMNS} FROM outcomes{where} ORDER BY at, conversation, message_id",
            params,
        )
        return [Outcome(**dict(zip(_OUTCOME_FIELDS, row, strict=True))) for row in rows]

    async def put_feedback(self, feedback: Feedback) -> None:
        marks = ", ".join("?" * len(_FEEDBACK_FIELDS))
        await self._write(
            f"INSERT OR REPLACE INTO feedback ({_FEEDBACK_COLUMNS}) VALUES ({marks})",
            dataclasses.astuple(feedback),
        )

    async def feedback(
        self,
        *,
        bot: str | None = None,
        since: float | None = None,
        until: float | None = None,
        user: str | None = None,
        conversation: str | None = None,
    ) -> list[Feedback]:
        where, params = _filters(bot, since, until, user, conversation)
        rows = await self._rows(
            f"SELECT {_FEEDBACK_COLUMNS} FROM feedback{where}"
            " ORDER BY at, conversation, message_id",
            params,
        )
        return [Feedback(**dict(zip(_FEEDBACK_FIELDS, row, strict=True))) for row in rows]

    async def idle_conversations(self, *, bot: str, before: float) -> list[str]:
        rows = await self._rows(
            "SELECT conversation FROM outcomes WHERE bot = ? GROUP BY conversation"
            " HAVING max(at) < ? ORDER BY conversation",
            (bot, before),
        )
        return [row[0] for row in rows]

    # --- erasure -------------------------------------------------------------------------

    async def erase(
        self, conversation: str, *, user: str | None = None, messages: Sequence[str] = ()
    ) -> list[str]:
        # The outcomes go last: they are how `forget` finds a conversation, so one that a
        # failure left half erased is found, and finished, the next time.
        if user is None:
            await self._write("DELETE FROM turns WHERE conversation = ?", (conversation,))
            await self._write("DELETE FROM feedback WHERE conversation = ?", (conversation,))
            handoffs = await self._write(
                "DELETE FROM handoffs WHERE conversation = ? RETURNING id", (conversation,)
            )
            await self._write("DELETE FROM outcomes WHERE conversation = ?", (conversation,))
            return sorted(row[0] for row in handoffs)
        ids = json.dumps(list(messages))
        mine = "(SELECT value FROM json_each(?))"
        await self._write(
            f"DELETE FROM turns WHERE conversation = ? AND (message_id IN {mine}"
            f" OR reply_to IN {mine})",
            (conversation, ids, ids),
        )
        await self._write(
            f"DELETE FROM feedback WHERE conversation = ? AND (message_id IN {mine} OR user = ?)",
            (conversation, ids, user),
        )
        handoffs = await self._write(
            "DELETE FROM handoffs WHERE conversation = ? AND json_extract(data, '$.user_id') = ?"
            " RETURNING id",
            (conversation, user),
        )
        await self._write(
            f"DELETE FROM outcomes WHERE conversation = ? AND message_id IN {mine}",
            (conversation, ids),
        )
        return sorted(row[0] for row in handoffs)

    async def erase_usage(self, *, user: str, bot: str | None = None) -> int:
        if not user:  # "" is the anonymous row itself
            return 0
        rows = await self._write(
            "DELETE FROM usage WHERE user = ? AND (? IS NULL OR bot = ?)"
            " RETURNING day, bot, model, prompt_tokens, completion_tokens",
            (user, bot, bot),
        )
        await self.add_usage(
            [UsageRecord(day, bot_, "", "", model, p, c) for day, bot_, model, p, c in rows]
        )
        return len(rows)

    # --- statements --------------------------------------------------------------------

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one statement to completion in a single trip to the database thread.

        Finishing every statement matters: an unread cursor would hold a read lock.
        """
        try:
            return list(await self._db.execute_fetchall(sql, params))
        except sqlite3.Error as err:
            raise self._error(err) from err

    async def _in_thread(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `work` with the connection on the database thread, in one trip.

        Each of aiosqlite's public calls is a trip to its thread, and on the message path
        a trip costs more CPU than a small statement and its commit; it has no public call
        for several statements at once, or for a cursor read only as far as needed, so
        this hands its internal `_execute` a function, as its own methods do. Other
        tasks' statements queue behind it: they never interleave.
        """
        db = self._db
        try:
            result: _T = await db._execute(lambda: work(db._conn))  # type: ignore[no-untyped-call]
        except sqlite3.Error as err:
            raise self._error(err) from err
        return result

    async def _transaction(self, work: Callable[[sqlite3.Connection], None]) -> None:
        """Run `work` in one immediate transaction, in one trip to the database thread
        (bench/pipeline: two writes in one trip save ~70 µs a message)."""

        def run(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        await self._in_thread(run)

    async def _write(self, sql: str, params: Sequence[Any]) -> list[Any]:
        rows = await self._rows(sql, params)
        self._writes_until_sweep -= 1
        if self._writes_until_sweep <= 0:
            self._writes_until_sweep = _SWEEP_EVERY
            await self._sweep()
        return rows

    async def _sweep(self) -> None:
        now = time.time()
        await self._rows("DELETE FROM records WHERE expires <= ?", (now,))
        await self._rows("DELETE FROM locks WHERE expires <= ?", (now,))
        await self._rows("DELETE FROM rates WHERE tat <= ?", (now,))
        await self._rows("DELETE FROM inbox WHERE done = 1 AND expires <= ?", (now - _DONE_KEPT,))

    async def aclose(self) -> None:
        await super().aclose()
        await self._db.close()

    def _error(self, err: sqlite3.Error) -> StoreError:
        reason = str(err)
        if "locked" in reason or "busy" in reason:
            reason = f"the file is locked by another process (waited {self._busy_timeout:g} s)"
        elif isinstance(err, sqlite3.DatabaseError) and "not a database" in reason:
            reason = "the file is not an SQLite database (corrupt, or another kind of file)"
        return StoreError(f"SQLite store {self.path}: {reason}")


def _filters(
    bot: str | None,
    since: float | None,
    until: float | None,
    user: str | None,
    conversation: str | None,
) -> tuple[str, list[Any]]:
    """The WHERE clause (with its parameters) of an outcome or feedback query."""
    clauses: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("bot = ?", bot),
        ("at >= ?", since),
        ("at < ?", until),
        ("user = ?", user),
        ("conversation = ?", conversation),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _statements(script: str) -> list[str]:
    """A migration's statements, one by one (a trigger's body holds semicolons too)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    return [s for s in statements if s.rstrip(";").strip()]


def _handoff_row(handoff: Handoff) -> tuple[Any, ...]:
    data = handoff.to_json()
    del data["version"]
    return (
        handoff.id,
        handoff.conversation,
        handoff.bot,
        handoff.state,
        handoff.desk_ref,
        handoff.created,
        handoff.version,
        json.dumps(data),
    )


def _handoff(row: tuple[str, int]) -> Handoff:
    return Handoff.from_json({**json.loads(row[0]), "version": row[1]})
