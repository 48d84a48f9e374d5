"""The store for many workers that keeps everything on disk: one PostgreSQL database.

Tables live in the connection's current schema (the first of `search_path`, usually
`public`; the URL's `options=-csearch_path=NAME` picks another), each named `botkit_…`
so they sit beside an application's own:

    botkit_schema         one row per migration applied (the schema's version)
    botkit_conversations  each conversation's newest turn number (cursors count on it)
    botkit_turns          the turns, numbered per conversation
    botkit_locks          conversation locks: the holder's token and when its lease ends
    botkit_records        JSON records, with an expiry when they have a time to live
    botkit_usage          tokens per day, bot, user, conversation and model; with running
    botkit_usage_bot        totals per day and bot, and per day, bot and user, so a budget
    botkit_usage_user       check reads one row
    botkit_rates          a GCRA's theoretical arrival time per key
    botkit_inbox          accepted work; finished items with a dedupe key are kept a day
    botkit_handoffs       handoffs; a partial unique index keeps one open per conversation
    botkit_outcomes       what became of each customer message (kind, FAQ score, time, cost)
    botkit_feedback       customers' votes on answers, one per answer

Every change is one statement, so it is atomic without a transaction held across
round trips. Times are the database's clock: workers on several machines then agree
on when a lease or a record runs out, and on a rate's window, whatever their clocks.

Driver: asyncpg, for speed. Measured here (2 cores, uvloop) a one-row SELECT costs
31 µs of CPU on asyncpg and 70 µs on psycopg 3; both have LISTEN/NOTIFY; asyncpg is
typed through asyncpg-stubs. Its pool is not used (see `Connections`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
import orjson

from botkit.errors import StoreError
from botkit.messages import Feedback, Handoff, Outcome, Turn
from botkit.stores.base import (
    DEFAULT_LEASE,
    InboxItem,
    Lease,
    LeaseLost,
    Store,
    UsageRecord,
    UsageTotal,
)

logger = logging.getLogger(__name__)

MIGRATIONS: tuple[str, ...] = (
    # 1: everything botkit keeps (its first PostgreSQL schema)
    """
    CREATE TABLE botkit_conversations (
        key text PRIMARY KEY,
        last bigint NOT NULL
    );
    CREATE TABLE botkit_turns (
        conversation text NOT NULL,
        seq bigint NOT NULL,
        role text NOT NULL,
        content text NOT NULL,
        raw bytea,
        at double precision NOT NULL,
        tokens integer NOT NULL,
        message_id text,
        reply_to text,
        kind text,
        name text,
        PRIMARY KEY (conversation, seq)
    );
    COMMENT ON COLUMN botkit_turns.raw IS
        'the exact UTF-8 text when it holds NUL, which text cannot; content then shows U+FFFD';
    CREATE TABLE botkit_locks (
        key text PRIMARY KEY,
        token text NOT NULL,
        expires timestamptz NOT NULL
    );
    CREATE TABLE botkit_records (
        key text PRIMARY KEY,
        value json NOT NULL,
        expires timestamptz
    );
    CREATE INDEX botkit_records_expiring ON botkit_records (expires) WHERE expires IS NOT NULL;
    CREATE TABLE botkit_usage (
        day date NOT NULL,
        bot text NOT NULL,
        "user" text NOT NULL,
        conversation text NOT NULL,
        model text NOT NULL,
        prompt_tokens bigint NOT NULL,
        completion_tokens bigint NOT NULL,
        PRIMARY KEY (day, bot, "user", conversation, model)
    );
    CREATE TABLE botkit_usage_bot (
        day date NOT NULL,
        bot text NOT NULL,
        tokens bigint NOT NULL,
        PRIMARY KEY (day, bot)
    );
    CREATE TABLE botkit_usage_user (
        day date NOT NULL,
        bot text NOT NULL,
        "user" text NOT NULL,
        tokens bigint NOT NULL,
        PRIMARY KEY (day, bot, "user")
    );
    CREATE TABLE botkit_rates (
        key text PRIMARY KEY,
        tat double precision NOT NULL
    );
    CREATE TABLE botkit_inbox (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        channel text NOT NULL,
        conversation text NOT NULL,
        payload json NOT NULL,
        owner text,
        expires timestamptz NOT NULL,
        attempts integer NOT NULL DEFAULT 1,
        dedupe text UNIQUE,
        done boolean NOT NULL DEFAULT false
    );
    CREATE INDEX botkit_inbox_ready ON botkit_inbox (channel, expires) WHERE NOT done;
    CREATE INDEX botkit_inbox_done ON botkit_inbox (expires) WHERE done;
    CREATE TABLE botkit_handoffs (
        id text PRIMARY KEY,
        conversation text NOT NULL,
        bot text NOT NULL,
        state text NOT NULL,
        desk_ref text,
        created double precision NOT NULL,
        version integer NOT NULL,
        data json NOT NULL
    );
    CREATE UNIQUE INDEX botkit_handoffs_open ON botkit_handoffs (conversation)
        WHERE state <> 'resolved';
    CREATE INDEX botkit_handoffs_open_by_age ON botkit_handoffs (created)
        WHERE state <> 'resolved';
    CREATE INDEX botkit_handoffs_by_desk ON botkit_handoffs (desk_ref, created);
    """,
    # 2: what became of each message and customers' votes, for reports, transcripts and
    # erasing one person's data; handoffs found by conversation, to erase them too
    """
    CREATE TABLE botkit_outcomes (
        bot text NOT NULL,
        channel text NOT NULL,
        conversation text NOT NULL,
        "user" text NOT NULL,
        message_id text NOT NULL,
        at double precision NOT NULL,
        kind text NOT NULL,
        question text NOT NULL,
        faq text,
        faq_score double precision,
        seconds double precision NOT NULL,
        prompt_tokens integer NOT NULL,
        completion_tokens integer NOT NULL,
        model text,
        cost double precision,
        error text,
        PRIMARY KEY (conversation, message_id)
    );
    CREATE INDEX botkit_outcomes_by_time ON botkit_outcomes (bot, at);
    CREATE INDEX botkit_outcomes_by_user ON botkit_outcomes ("user");
    CREATE TABLE botkit_feedback (
        bot text NOT NULL,
        channel text NOT NULL,
        conversation text NOT NULL,
        message_id text NOT NULL,
        "user" text NOT NULL,
        score smallint NOT NULL,
        comment text,
        at double precision NOT NULL,
        PRIMARY KEY (conversation, message_id)
    );
    CREATE INDEX botkit_feedback_by_time ON botkit_feedback (bot, at);
    CREATE INDEX botkit_feedback_by_user ON botkit_feedback ("user");
    CREATE INDEX botkit_handoffs_by_conversation ON botkit_handoffs (conversation);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_SWEEP_EVERY = 1000
"""Expired rows are skipped when read and deleted after this many writes."""
_DONE_KEPT = "1 day"
"""Finished inbox items with a dedupe key are kept this long, so a re-delivery is known."""
_KEEPALIVE = 15.0
"""Seconds between pings of the idle listening connection, to notice a silent drop."""

_EPOCH = "extract(epoch FROM now())::float8"
_TURN_COLUMNS = "role, content, raw, at, tokens, message_id, reply_to, kind, name"
_TURNS_IN = (
    "unnest($2::text[], $3::text[], $4::bytea[], $5::float8[], $6::int[], $7::text[],"
    " $8::text[], $9::text[], $10::text[]) WITH ORDINALITY"
    " AS t(role, content, raw, at, tokens, message_id, reply_to, kind, name, n)"
)
# The conversation's row numbers the turns: its row lock, held to the commit, makes
# concurrent appends to one conversation commit in the order of their numbers, so a
# reader that has seen turn n has seen every turn before it (a global sequence would
# not promise that). The fenced form takes the lock row FOR SHARE in the same
# statement: a worker taking the lock over waits for this append to commit, and an
# append that comes after the takeover finds another token and writes nothing.
_APPEND = f"""
WITH counter AS (
    INSERT INTO botkit_conversations AS c (key, last) {{source}}
    ON CONFLICT (key) DO UPDATE SET last = c.last + excluded.last
    RETURNING last
)
INSERT INTO botkit_turns (conversation, seq, {_TURN_COLUMNS})
SELECT $1, counter.last - cardinality($2::text[]) + t.n, t.role, t.content, t.raw, t.at,
    t.tokens, t.message_id, t.reply_to, t.kind, t.name
FROM counter, {_TURNS_IN}
RETURNING seq
"""
_APPEND_FREE = _APPEND.format(source="VALUES ($1, cardinality($2::text[]))")
_APPEND_FENCED = _APPEND.format(
    source="SELECT $1, cardinality($2::text[]) FROM ("
    "SELECT 1 FROM botkit_locks WHERE key = $1 AND token = $11 FOR SHARE) AS fence"
)
# GCRA in one statement: a key seen for the first time starts from now. When the take is
# refused, the outer query still sees the stored time (from before the statement), so
# the wait until it would go through comes back in the same round trip.
_TAKE_RATE = f"""
WITH taken AS (
    INSERT INTO botkit_rates AS r (key, tat)
    SELECT $1, {_EPOCH} + $2::float8 WHERE $2::float8 - $3::float8 <= $4::float8
    ON CONFLICT (key) DO UPDATE SET tat = GREATEST(r.tat, {_EPOCH}) + $2::float8
    WHERE GREATEST(r.tat, {_EPOCH}) + $2::float8 - $3::float8 - {_EPOCH} <= $4::float8
    RETURNING r.tat
)
SELECT (SELECT tat FROM taken), (SELECT tat FROM botkit_rates WHERE key = $1), {_EPOCH}
"""
_OUTCOME_FIELDS = tuple(f.name for f in dataclasses.fields(Outcome))
_FEEDBACK_FIELDS = tuple(f.name for f in dataclasses.fields(Feedback))
# The columns' types, in the order of the dataclasses' fields.
_OUTCOME_TYPES = (
    *("text", "text", "text", "text", "text", "float8", "text", "text", "text", "float8"),
    *("float8", "int", "int", "text", "float8", "text"),
)
_FEEDBACK_TYPES = ("text", "text", "text", "text", "text", "smallint", "text", "float8")


def _upsert(table: str, fields: tuple[str, ...], types: tuple[str, ...]) -> str:
    """Insert rows given as one array per column; a row already there (same conversation
    and message) is replaced."""
    columns = ", ".join(f'"{f}"' for f in fields)
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
    updates = ", ".join(f'"{f}" = excluded."{f}"' for f in fields)
    return (
        f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays})"
        f" ON CONFLICT (conversation, message_id) DO UPDATE SET {updates}"
    )


_ADD_OUTCOMES = _upsert("botkit_outcomes", _OUTCOME_FIELDS, _OUTCOME_TYPES)
_PUT_FEEDBACK = _upsert("botkit_feedback", _FEEDBACK_FIELDS, _FEEDBACK_TYPES)
# One statement each, so an erasure is whole or not at all.
_ERASE = """
WITH turns AS (DELETE FROM botkit_turns WHERE conversation = $1),
    numbers AS (DELETE FROM botkit_conversations WHERE key = $1),
    votes AS (DELETE FROM botkit_feedback WHERE conversation = $1),
    handoffs AS (DELETE FROM botkit_handoffs WHERE conversation = $1 RETURNING id),
    outcomes AS (DELETE FROM botkit_outcomes WHERE conversation = $1)
SELECT id FROM handoffs ORDER BY id COLLATE "C"
"""
_ERASE_PART = """
WITH turns AS (
        DELETE FROM botkit_turns WHERE conversation = $1
        AND (message_id = ANY($2::text[]) OR reply_to = ANY($2::text[]))
    ),
    votes AS (
        DELETE FROM botkit_feedback WHERE conversation = $1
        AND (message_id = ANY($2::text[]) OR "user" = $3)
    ),
    handoffs AS (
        DELETE FROM botkit_handoffs WHERE conversation = $1 AND data->>'user_id' = $3
        RETURNING id
    ),
    outcomes AS (
        DELETE FROM botkit_outcomes WHERE conversation = $1 AND message_id = ANY($2::text[])
    )
SELECT id FROM handoffs ORDER BY id COLLATE "C"
"""
# The user's rows are summed into the anonymous row of their day, bot and model; the
# per-bot running totals never named them and stay.
_ERASE_USAGE = """
WITH gone AS (
        DELETE FROM botkit_usage WHERE "user" = $1 AND ($2::text IS NULL OR bot = $2)
        RETURNING day, bot, model, prompt_tokens, completion_tokens
    ),
    anonymous AS (
        INSERT INTO botkit_usage AS u
        SELECT day, bot, '', '', model, sum(prompt_tokens)::bigint,
            sum(completion_tokens)::bigint
        FROM gone GROUP BY day, bot, model
        ON CONFLICT (day, bot, "user", conversation, model) DO UPDATE SET
            prompt_tokens = u.prompt_tokens + excluded.prompt_tokens,
            completion_tokens = u.completion_tokens + excluded.completion_tokens
    ),
    totals AS (DELETE FROM botkit_usage_user WHERE "user" = $1 AND ($2::text IS NULL OR bot = $2))
SELECT count(*) FROM gone
"""
_SWEEP = f"""
WITH records AS (DELETE FROM botkit_records WHERE expires <= now()),
    locks AS (DELETE FROM botkit_locks WHERE expires <= now()),
    rates AS (DELETE FROM botkit_rates WHERE tat <= {_EPOCH}),
    inbox AS (DELETE FROM botkit_inbox WHERE done AND expires <= now() - interval '{_DONE_KEPT}')
SELECT 1
"""

# Errors after which the connection is gone but the database is likely fine: a statement
# that is safe to repeat is tried once more, on another connection.
_CONNECTION_LOST: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    ConnectionError,
)
# Errors after which the transaction was rolled back, so any statement may be repeated.
_ROLLED_BACK: tuple[type[BaseException], ...] = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


class _Busy(Exception):
    """Every connection of the pool stayed in use for the whole `timeout`."""


class Connections:
    """A bounded pool of connections: at most `size`, made when needed, the most recently
    used handed out first, and those idle for `idle` seconds closed.

    asyncpg has a pool, but on this machine it adds about 45 µs of CPU to every
    statement (a task per release, a reset), twice what a short statement costs;
    this one adds a few. A connection that failed or was cancelled mid-statement is
    closed, never handed out again.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        *,
        size: int,
        timeout: float,
        idle: float = 60.0,
    ) -> None:
        self.size = size
        self.timeout = timeout
        self._connect = connect
        self._slots = asyncio.Semaphore(size)  # one per connection in use or being made
        self._idle: list[tuple[asyncpg.Connection, float]] = []  # newest last
        self._idle_lifetime = idle
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    def acquire(self) -> _Borrowed:
        return _Borrowed(self)

    async def _take(self) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.InterfaceError("the store is closed")
        if self._slots.locked():
            try:
                async with asyncio.timeout(self.timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise _Busy from None
        else:
            await self._slots.acquire()  # free: returns at once
        try:
            while self._idle:
                conn = self._idle.pop()[0]
                if not conn.is_closed():
                    return conn
            return await self._connect()
        except BaseException:
            self._slots.release()
            raise

    def _give_back(self, conn: asyncpg.Connection, healthy: bool) -> None:
        self._slots.release()
        if not healthy or self._closed or conn.is_closed() or conn.is_in_transaction():
            conn.terminate()
            return
        now = time.monotonic()
        self._idle.append((conn, now))
        # The longest idle are at the bottom of the stack.
        while now - self._idle[0][1] > self._idle_lifetime:
            self._close_later(self._idle.pop(0)[0])

    def _close_later(self, conn: asyncpg.Connection) -> None:
        task = asyncio.create_task(conn.close(timeout=self.timeout))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close the idle connections; those in use are closed when given back."""
        self._closed = True
        while self._idle:
            self._close_later(self._idle.pop()[0])
        if self._closing:
            await asyncio.wait(self._closing)


class _Borrowed:
    """`async with connections.acquire() as conn:` one connection for one use."""

    __slots__ = ("_pool", "_conn")

    def __init__(self, pool: Connections) -> None:
        self._pool = pool

    async def __aenter__(self) -> asyncpg.Connection:
        self._conn = await self._pool._take()
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A statement refused (by the server, or by asyncpg before sending it) leaves the
        # connection fine; anything else (a lost connection, a cancellation mid-statement)
        # may not.
        healthy = exc is None or (
            isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, _CONNECTION_LOST)
        )
        self._pool._give_back(self._conn, healthy)


class PostgresStore(Store):
    """Everything in one PostgreSQL database; open it with `await PostgresStore.open(url)`."""

    def __init__(
        self,
        pool: Connections,
        *,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        where: str,
        password: str | None,
        schema: str,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        super().__init__(lease=lease)
        self._pool = pool
        self._connect = connect
        self._where = where
        self._password = password
        self.schema = schema
        self.worker = secrets.token_hex(8)
        # NOTIFY reaches every listener of the database, not of the schema: the channel
        # names the schema, so deployments sharing a database do not wake each other.
        channel = f"botkit:{schema}"
        if len(channel.encode()) > 63:  # PostgreSQL's longest identifier
            channel = f"botkit:{hashlib.sha1(schema.encode()).hexdigest()}"
        self._channel = channel
        self._writes_until_sweep = _SWEEP_EVERY

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        lease: float = DEFAULT_LEASE,
        pool_size: int = 10,
        pool_timeout: float = 5.0,
    ) -> PostgresStore:
        """Connect, creating or upgrading the schema if needed.

        At most `pool_size` connections serve statements, and a statement waits up to
        `pool_timeout` seconds for a free one (or for a new one to connect); one more
        connection, outside the pool, listens for other workers' notices once anyone
        subscribes.
        """
        where, password, query = _describe(url)
        # asyncpg passes unknown URL parameters to the server as settings; name the
        # connections so an operator sees whose they are in pg_stat_activity.
        settings = {} if "application_name" in query else {"application_name": "botkit"}

        async def connect() -> asyncpg.Connection:
            return await asyncpg.connect(url, timeout=pool_timeout, server_settings=settings)

        pool = Connections(connect, size=pool_size, timeout=pool_timeout)
        try:
            async with pool.acquire() as conn:
                schema = await conn.fetchval("SELECT current_schema()")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, ValueError) as err:
            await pool.close()
            reason = (
                f"no answer in {pool_timeout:g} s"
                if isinstance(err, TimeoutError)
                else _scrub(err, password)
            )
            raise StoreError(f"PostgreSQL store at {where}: cannot connect: {reason}") from err
        store = cls(
            pool, connect=connect, where=where, password=password, schema=schema, lease=lease
        )
        try:
            if schema is None:
                raise StoreError(
                    f"PostgreSQL store at {where}: no schema of the search_path exists; "
                    "create it, or name another in the URL's options=-csearch_path=NAME"
                )
            await store._migrate()
        except BaseException as err:
            await pool.close()
            if isinstance(err, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
                raise store._error(err) from err
            raise
        return store

    async def _migrate(self) -> None:
        """Bring the schema to `SCHEMA_VERSION`. The migrations run in one transaction
        under an advisory lock on the schema's name, so workers starting together on
        an old (or empty) database upgrade it once; the others wait, then find it done."""
        try:
            async with self._pool.acquire() as conn:
                version = await conn.fetchval("SELECT max(version) FROM botkit_schema")
        except asyncpg.UndefinedTableError:
            version = 0
        if version == SCHEMA_VERSION:
            return
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"botkit_schema:{self.schema}",
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS botkit_schema ("
                " version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())"
            )
            version = await conn.fetchval("SELECT coalesce(max(version), 0) FROM botkit_schema")
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"PostgreSQL store at {self._where}: written by a newer botkit (schema "
                    f"{version}, this one knows {SCHEMA_VERSION}); upgrade botkit"
                )
            for number in range(version, SCHEMA_VERSION):
                await conn.execute(MIGRATIONS[number])
                await conn.execute("INSERT INTO botkit_schema (version) VALUES ($1)", number + 1)
                logger.info("PostgreSQL store at %s: schema %d applied", self._where, number + 1)

    # --- conversations ---------------------------------------------------------------

    async def recent(self, key: str, limit: int, *, max_tokens: int | None = None) -> list[Turn]:
        if limit <= 0:
            return []
        if max_tokens is None:
            rows = await self._fetch(
                f"SELECT {_TURN_COLUMNS} FROM botkit_turns WHERE conversation = $1"
                " ORDER BY seq DESC LIMIT $2",
                key,
                limit,
                retry=True,
            )
        else:
            # The newer turns' tokens summed in the database: what cannot fit is never sent.
            rows = await self._fetch(
                f"SELECT {_TURN_COLUMNS} FROM (SELECT *, SUM(tokens) OVER"
                " (ORDER BY seq DESC ROWS UNBOUNDED PRECEDING) AS newer FROM"
                " (SELECT * FROM botkit_turns WHERE conversation = $1 ORDER BY seq DESC"
                " LIMIT $2) AS latest) AS counted WHERE newer - tokens <= $3 ORDER BY seq DESC",
                key,
                limit,
                max_tokens,
                retry=True,
            )
        return [_turn(row) for row in reversed(rows)]

    async def append(self, key: str, turns: Sequence[Turn], *, lease: Lease | None = None) -> None:
        if not turns:
            return
        columns: list[list[Any]] = [[] for _ in range(9)]
        for t in turns:
            # text cannot hold NUL: such a turn keeps its exact bytes in `raw`.
            raw = t.content.encode() if "\x00" in t.content else None
            content = t.content.replace("\x00", "\ufffd") if raw is not None else t.content
            values = (t.role, content, raw, t.at, t.tokens, t.id, t.reply_to, t.kind, t.name)
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        if lease is None:
            await self._write(_APPEND_FREE, key, *columns)
        elif not await self._write(_APPEND_FENCED, key, *columns, lease.token):
            raise LeaseLost(f"the lock of {key} has passed to another worker")

    async def reset(self, key: str) -> None:
        # The conversation's row stays: its counter keeps cursors moving forward.
        await self._write("DELETE FROM botkit_turns WHERE conversation = $1", key, retry=True)

    async def cursor(self, key: str) -> int:
        rows = await self._fetch(
            "SELECT last FROM botkit_conversations WHERE key = $1", key, retry=True
        )
        return int(rows[0][0]) if rows else 0

    async def turns_since(self, key: str, cursor: int) -> tuple[int, list[Turn]]:
        rows = await self._fetch(
            f"SELECT seq, {_TURN_COLUMNS} FROM botkit_turns"
            " WHERE conversation = $1 AND seq > $2 ORDER BY seq",
            key,
            cursor,
            retry=True,
        )
        return (int(rows[-1][0]) if rows else cursor), [_turn(row[1:]) for row in rows]

    # A lock is a row with the holder's token and the end of its lease, not a session
    # advisory lock or SELECT … FOR UPDATE: those live as long as a connection, so each
    # conversation in flight would pin one of the pool (1,000 conversations, 1,000
    # connections), and a worker that stalled past its lease could not be fenced. The
    # row is taken only when free or expired; taking it again with the same token is
    # a success, so a statement repeated after a lost connection cannot lock us out.

    async def _try_lock(self, lease: Lease) -> bool:
        taken = await self._write(
            "INSERT INTO botkit_locks AS l (key, token, expires)"
            " VALUES ($1, $2, now() + $3 * interval '1 second')"
            " ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires = excluded.expires"
            " WHERE l.expires <= now() OR l.token = excluded.token RETURNING 1",
            lease.key,
            lease.token,
            self.lease,
            retry=True,
        )
        return bool(taken)

    async def _renew_lock(self, lease: Lease) -> bool:
        renewed = await self._fetch(
            "UPDATE botkit_locks SET expires = now() + $3 * interval '1 second'"
            " WHERE key = $1 AND token = $2 RETURNING 1",
            lease.key,
            lease.token,
            self.lease,
            retry=True,
        )
        return bool(renewed)

    async def _unlock(self, lease: Lease) -> None:
        await self._fetch(
            "DELETE FROM botkit_locks WHERE key = $1 AND token = $2",
            lease.key,
            lease.token,
            retry=True,
        )

    # --- records -----------------------------------------------------------------------

    async def get_record(self, key: str) -> dict[str, Any] | None:
        rows = await self._fetch(
            "SELECT value FROM botkit_records WHERE key = $1"
            " AND (expires IS NULL OR expires > now())",
            key,
            retry=True,
        )
        return dict(orjson.loads(rows[0][0])) if rows else None

    async def put_record(
        self, key: str, value: dict[str, Any], *, ttl: float | None = None
    ) -> None:
        await self._write(
            "INSERT INTO botkit_records (key, value, expires)"
            " VALUES ($1, $2, now() + $3 * interval '1 second')"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
            key,
            orjson.dumps(value).decode(),
            ttl,
            retry=True,
        )

    async def delete_record(self, key: str) -> bool:
        rows = await self._write(
            "DELETE FROM botkit_records WHERE key = $1"
            " RETURNING expires IS NULL OR expires > now()",
            key,
        )
        return bool(rows and rows[0][0])

    async def claim(self, key: str, *, ttl: float) -> bool:
        # One statement, so two workers racing for the same key cannot both win.
        claimed = await self._write(
            "INSERT INTO botkit_records AS r (key, value, expires)"
            " VALUES ($1, '{}', now() + $2 * interval '1 second')"
            " ON CONFLICT (key) DO UPDATE SET value = '{}', expires = excluded.expires"
            " WHERE r.expires IS NOT NULL AND r.expires <= now() RETURNING 1",
            key,
            ttl,
        )
        return bool(claimed)

    # --- usage -------------------------------------------------------------------------

    async def add_usage(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return
        # One statement may not change a row twice: sum per row first. Sorted, so workers
        # adding at once lock rows in the same order and never deadlock.
        detail: defaultdict[tuple[str, str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        per_bot: defaultdict[tuple[str, str], int] = defaultdict(int)
        per_user: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        for r in records:
            sums = detail[(r.day, r.bot, r.user, r.conversation, r.model)]
            sums[0] += r.prompt_tokens
            sums[1] += r.completion_tokens
            per_bot[(r.day, r.bot)] += r.prompt_tokens + r.completion_tokens
            per_user[(r.day, r.bot, r.user)] += r.prompt_tokens + r.completion_tokens
        rows = sorted(detail.items())
        bots = sorted(per_bot.items())
        users = sorted(per_user.items())
        await self._write(
            """
            WITH detail AS (
                INSERT INTO botkit_usage AS u
                SELECT day::date, bot, usr, conv, model, p, c
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                    $6::bigint[], $7::bigint[]) AS x(day, bot, usr, conv, model, p, c)
                ON CONFLICT (day, bot, "user", conversation, model) DO UPDATE SET
                    prompt_tokens = u.prompt_tokens + excluded.prompt_tokens,
                    completion_tokens = u.completion_tokens + excluded.completion_tokens
            ), per_bot AS (
                INSERT INTO botkit_usage_bot AS b
                SELECT day::date, bot, n FROM unnest($8::text[], $9::text[], $10::bigint[])
                    AS x(day, bot, n)
                ON CONFLICT (day, bot) DO UPDATE SET tokens = b.tokens + excluded.tokens
            )
            INSERT INTO botkit_usage_user AS u
            SELECT day::date, bot, usr, n FROM unnest($11::text[], $12::text[], $13::text[],
                $14::bigint[]) AS x(day, bot, usr, n)
            ON CONFLICT (day, bot, "user") DO UPDATE SET tokens = u.tokens + excluded.tokens
            """,
            *_columns([(*key, *sums) for key, sums in rows], 7),
            *_columns([(*key, n) for key, n in bots], 3),
            *_columns([(*key, n) for key, n in users], 4),
        )

    async def usage_totals(self, *, since: str, bot: str | None = None) -> list[UsageTotal]:
        # Sorted byte-wise, as the other stores sort, whatever the database's collation.
        select = (
            "SELECT day::text, bot, model, sum(prompt_tokens)::bigint,"
            " sum(completion_tokens)::bigint FROM botkit_usage WHERE day >= $1::text::date"
        )
        group = ' GROUP BY day, bot, model ORDER BY day, bot COLLATE "C", model COLLATE "C"'
        if bot is None:
            rows = await self._fetch(select + group, since, retry=True)
        else:
            rows = await self._fetch(select + " AND bot = $2" + group, since, bot, retry=True)
        return [UsageTotal(*row) for row in rows]

    async def tokens_used(self, *, day: str, bot: str, user: str | None = None) -> int:
        # One row of the running totals, read through its primary key.
        if user is None:
            rows = await self._fetch(
                "SELECT tokens FROM botkit_usage_bot WHERE day = $1::text::date AND bot = $2",
                day,
                bot,
                retry=True,
            )
        else:
            rows = await self._fetch(
                "SELECT tokens FROM botkit_usage_user"
                ' WHERE day = $1::text::date AND bot = $2 AND "user" = $3',
                day,
                bot,
                user,
                retry=True,
            )
        return int(rows[0][0]) if rows else 0

    # --- rates -------------------------------------------------------------------------

    async def take_rate(
        self, key: str, cost: float, *, rate: float, burst: float, max_wait: float
    ) -> float:
        step, window = cost / rate, burst / rate
        rows = await self._write(_TAKE_RATE, key, step, window, max_wait)
        taken, held, now = rows[0]
        if taken is not None:
            return max(0.0, float(taken - window - now))
        tat = now if held is None else max(held, now)
        return max(0.0, float(tat + step - window - now))

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
            "INSERT INTO botkit_inbox (channel, conversation, payload, owner, expires, dedupe)"
            " VALUES ($1, $2, $3, $4, now() + $5 * interval '1 second', $6)"
            " ON CONFLICT (dedupe) DO NOTHING RETURNING id",
            channel,
            conversation,
            orjson.dumps(payload).decode(),
            self.worker if owned else None,
            self.lease if owned else 0.0,
            dedupe,
        )
        if not rows:
            return None
        item = InboxItem(str(rows[0][0]), channel, conversation, payload)
        if owned:
            return self._hold(item)
        await self.publish(f"inbox:{channel}")
        return item

    async def inbox_take(self, channels: Sequence[str], *, limit: int = 20) -> list[InboxItem]:
        if not channels:
            return []
        # SKIP LOCKED: workers taking at once each get different items, without waiting.
        rows = await self._write(
            "UPDATE botkit_inbox SET owner = $1, expires = now() + $2 * interval '1 second',"
            " attempts = attempts + 1"
            " WHERE id IN (SELECT id FROM botkit_inbox"
            "  WHERE NOT done AND expires <= now() AND channel = ANY($3::text[])"
            "  ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)"
            " RETURNING id, channel, conversation, payload, attempts",
            self.worker,
            self.lease,
            list(channels),
            limit,
        )
        items = [
            InboxItem(str(i), channel, conversation, orjson.loads(payload), attempts)
            for i, channel, conversation, payload, attempts in sorted(rows, key=lambda r: r[0])
        ]
        return [self._hold(item) for item in items]

    async def inbox_done(self, item: InboxItem) -> None:
        self._release(item)
        # Only an item with a dedupe key is kept (a day, emptied), to recognise a re-delivery.
        await self._write(
            "WITH gone AS (DELETE FROM botkit_inbox WHERE id = $1 AND dedupe IS NULL)"
            " UPDATE botkit_inbox SET done = true, payload = '{}', conversation = '', owner = NULL,"
            " expires = now()"
            " WHERE id = $1 AND dedupe IS NOT NULL",
            int(item.id),
            retry=True,
        )

    async def inbox_later(self, item: InboxItem, *, delay: float) -> None:
        self._release(item)
        await self._write(
            "UPDATE botkit_inbox SET owner = NULL, expires = now() + $2 * interval '1 second'"
            " WHERE id = $1 AND NOT done",
            int(item.id),
            delay,
            retry=True,
        )
        await self.publish(f"inbox:{item.channel}")

    async def _renew_items(self, items: Sequence[InboxItem]) -> set[str]:
        # One statement for all of them. By id, not by owner alone: an item whose take
        # was answered on a connection that then broke is not ours to keep.
        rows = await self._fetch(
            "UPDATE botkit_inbox SET expires = now() + $3 * interval '1 second'"
            " WHERE id = ANY($1::bigint[]) AND owner = $2 AND NOT done RETURNING id",
            [int(item.id) for item in items],
            self.worker,
            self.lease,
            retry=True,
        )
        return {str(row["id"]) for row in rows}

    # --- handoffs ----------------------------------------------------------------------

    async def handoff_open(self, handoff: Handoff) -> Handoff:
        for _ in range(5):
            opened = await self._write(
                "INSERT INTO botkit_handoffs"
                " (id, conversation, bot, state, desk_ref, created, version, data)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (conversation) WHERE state <> 'resolved' DO NOTHING RETURNING 1",
                *_handoff_row(handoff),
            )
            if opened:
                return handoff
            current = await self.handoff_current(handoff.conversation)
            if current is not None:
                return current
            # Resolved in between: try again.
        raise StoreError(
            f"PostgreSQL store at {self._where}: the handoffs of {handoff.conversation} "
            "keep changing; could not open one"
        )

    async def handoff_get(self, handoff_id: str) -> Handoff | None:
        return await self._handoff("id = $1", handoff_id)

    async def handoff_current(self, conversation: str) -> Handoff | None:
        return await self._handoff("conversation = $1 AND state <> 'resolved'", conversation)

    async def handoff_by_desk(self, desk_ref: str) -> Handoff | None:
        return await self._handoff("desk_ref = $1 ORDER BY created DESC LIMIT 1", desk_ref)

    async def handoff_update(self, handoff: Handoff) -> Handoff | None:
        data = _handoff_row(handoff)[-1]
        updated = await self._write(
            "UPDATE botkit_handoffs SET state = $1, desk_ref = $2, version = version + 1,"
            " data = $3 WHERE id = $4 AND version = $5 RETURNING version",
            handoff.state,
            handoff.desk_ref,
            data,
            handoff.id,
            handoff.version,
        )
        if not updated:
            return None
        return Handoff.from_json({**handoff.to_json(), "version": updated[0][0]})

    async def handoffs_open(self, bot: str | None = None) -> list[Handoff]:
        select = "SELECT data, version FROM botkit_handoffs WHERE state <> 'resolved'"
        if bot is None:
            rows = await self._fetch(select + " ORDER BY created", retry=True)
        else:
            rows = await self._fetch(select + " AND bot = $1 ORDER BY created", bot, retry=True)
        return [_handoff(row) for row in rows]

    async def _handoff(self, where: str, value: str) -> Handoff | None:
        rows = await self._fetch(
            f"SELECT data, version FROM botkit_handoffs WHERE {where}", value, retry=True
        )
        return _handoff(rows[0]) if rows else None

    # --- outcomes and feedback ------------------------------------------------------------

    async def add_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        # One statement may not change a row twice: the last outcome of a message wins.
        latest = {(o.conversation, o.message_id): o for o in outcomes}
        if not latest:
            return
        rows = [_values(o) for _, o in sorted(latest.items())]
        await self._write(_ADD_OUTCOMES, *_columns(rows, len(_OUTCOME_FIELDS)), retry=True)

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
        columns = ", ".join(f'"{f}"' for f in _OUTCOME_FIELDS)
        rows = await self._fetch(
            f"SELECT {columns} FROM botkit_outcomes{where}"
            ' ORDER BY at, conversation COLLATE "C", message_id COLLATE "C"',
            *params,
            retry=True,
        )
        return [Outcome(**dict(row)) for row in rows]

    async def put_feedback(self, feedback: Feedback) -> None:
        row = _values(feedback)
        await self._write(_PUT_FEEDBACK, *([value] for value in row), retry=True)

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
        columns = ", ".join(f'"{f}"' for f in _FEEDBACK_FIELDS)
        rows = await self._fetch(
            f"SELECT {columns} FROM botkit_feedback{where}"
            ' ORDER BY at, conversation COLLATE "C", message_id COLLATE "C"',
            *params,
            retry=True,
        )
        return [Feedback(**dict(row)) for row in rows]

    async def idle_conversations(self, *, bot: str, before: float) -> list[str]:
        rows = await self._fetch(
            "SELECT conversation FROM botkit_outcomes WHERE bot = $1 GROUP BY conversation"
            ' HAVING max(at) < $2 ORDER BY conversation COLLATE "C"',
            bot,
            before,
            retry=True,
        )
        return [row[0] for row in rows]

    # --- erasure -------------------------------------------------------------------------

    async def erase(
        self, conversation: str, *, user: str | None = None, messages: Sequence[str] = ()
    ) -> list[str]:
        if user is None:
            rows = await self._write(_ERASE, conversation, retry=True)
        else:
            rows = await self._write(_ERASE_PART, conversation, list(messages), user, retry=True)
        return [row[0] for row in rows]

    async def erase_usage(self, *, user: str, bot: str | None = None) -> int:
        if not user:  # "" is the anonymous row itself
            return 0
        rows = await self._write(_ERASE_USAGE, user, bot)
        return int(rows[0][0])

    # --- the feed ----------------------------------------------------------------------

    async def _publish_remote(self, topic: str) -> None:
        await self._fetch("SELECT pg_notify($1, $2)", self._channel, topic, retry=True)

    async def _listen(self, ready: asyncio.Event) -> None:
        """One LISTEN connection per store, outside the pool, fanned out to its readers;
        connected again whenever it drops (waiting 1 s, then longer, up to 30 s)."""
        delay = 1.0
        while True:
            conn: asyncpg.Connection | None = None
            lost = asyncio.Event()
            try:
                conn = await self._connect()
                conn.add_termination_listener(lambda _, event=lost: event.set())
                await conn.add_listener(self._channel, self._notified)
                delay = 1.0
                if ready.is_set():
                    # Back after a drop: notices sent meanwhile are lost, so readers look.
                    for topic in list(self._waiters):
                        self._wake(topic)
                ready.set()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(_KEEPALIVE):
                            await lost.wait()
                    if not lost.is_set():  # a network that drops silently sends no FIN
                        await conn.execute("SELECT 1", timeout=self._pool.timeout)
                logger.warning("PostgreSQL feed at %s lost; reconnecting", self._where)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as err:
                logger.warning(
                    "PostgreSQL feed at %s lost (%s); reconnecting",
                    self._where,
                    _scrub(err, self._password),
                )
            finally:
                ready.set()  # readers fall back to polling until it is back
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self._wake(str(payload))

    # --- statements --------------------------------------------------------------------

    async def _fetch(self, sql: str, *args: Any, retry: bool = False) -> list[asyncpg.Record]:
        """Run one statement on a pooled connection and return its rows.

        `retry`: the statement may run twice (a read, or a write whose repeat changes
        nothing), so it is tried again on another connection when its own was lost.
        """
        for attempt in range(3):
            try:
                async with self._pool.acquire() as conn:
                    return list(await conn.fetch(sql, *args))
            except _Busy as err:
                raise StoreError(
                    f"PostgreSQL store at {self._where}: no connection free in "
                    f"{self._pool.timeout:g} s; all {self._pool.size} of the pool are busy"
                ) from err
            except TimeoutError as err:  # connecting
                raise StoreError(
                    f"PostgreSQL store at {self._where}: no answer in {self._pool.timeout:g} s"
                ) from err
            except _ROLLED_BACK as err:
                if attempt == 2:
                    raise self._error(err) from err
            except _CONNECTION_LOST as err:
                if not retry or attempt > 0:
                    raise self._error(err) from err
                logger.info("PostgreSQL store at %s: connection lost; trying again", self._where)
            except (asyncpg.PostgresError, OSError) as err:
                raise self._error(err) from err
        raise AssertionError("unreachable")

    async def _write(self, sql: str, *args: Any, retry: bool = False) -> list[asyncpg.Record]:
        rows = await self._fetch(sql, *args, retry=retry)
        self._writes_until_sweep -= 1
        if self._writes_until_sweep <= 0:
            self._writes_until_sweep = _SWEEP_EVERY
            await self._fetch(_SWEEP, retry=True)
        return rows

    async def aclose(self) -> None:
        await super().aclose()
        await self._pool.close()

    def _error(self, err: BaseException) -> StoreError:
        return StoreError(f"PostgreSQL store at {self._where}: {_scrub(err, self._password)}")


def _describe(url: str) -> tuple[str, str | None, dict[str, list[str]]]:
    """`host:port/db` for messages (never the password), the password, and the query."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    try:
        port = str(parts.port or 5432)
    except ValueError:  # asyncpg says what is wrong with it
        port = "?"
    host = parts.hostname or query.get("host", ["localhost"])[0]
    database = unquote(parts.path.lstrip("/")) or query.get("dbname", [""])[0]
    if not database:
        database = unquote(parts.username or "") or "postgres"
    password = unquote(parts.password) if parts.password else None
    return f"{host}:{port}/{database}", password, query


def _scrub(err: BaseException, password: str | None) -> str:
    """The error's message, with the password blanked should a driver ever echo it."""
    text = str(err) or type(err).__name__
    return text.replace(password, "***") if password and len(password) > 3 else text


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column, for `unnest`."""
    return [[row[i] for row in rows] for i in range(width)]


def _values(item: Outcome | Feedback) -> tuple[Any, ...]:
    """A row's values; text cannot hold NUL, so a NUL in a question or comment shows as U+FFFD."""
    values = (getattr(item, field.name) for field in dataclasses.fields(item))
    return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in values)


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
    for column, operator, value in (
        ("bot", "=", bot),
        ("at", ">=", since),
        ("at", "<", until),
        ('"user"', "=", user),
        ("conversation", "=", conversation),
    ):
        if value is not None:
            params.append(value)
            clauses.append(f"{column} {operator} ${len(params)}")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _turn(row: Any) -> Turn:
    role, content, raw, at, tokens, message_id, reply_to, kind, name = row
    return Turn(
        role,
        content if raw is None else bytes(raw).decode(),
        at,
        tokens,
        message_id,
        reply_to,
        kind,
        name,
    )


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
        orjson.dumps(data).decode(),
    )


def _handoff(row: Any) -> Handoff:
    return Handoff.from_json({**orjson.loads(row[0]), "version": row[1]})
