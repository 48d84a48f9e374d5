"""Stores, chosen by URL: `memory://`, `sqlite:///PATH`, `redis://host:port/db`,
`postgresql://user@host:port/db`."""

from __future__ import annotations

from pathlib import Path

from botkit.errors import ConfigError, Problem
from botkit.settings import StoreSettings
from botkit.stores.base import (
    DEFAULT_LEASE,
    ConversationStore,
    InboxItem,
    Lease,
    LeaseLost,
    RecordStore,
    Store,
)
from botkit.stores.memory import MemoryStore

__all__ = [
    "ConversationStore",
    "InboxItem",
    "Lease",
    "LeaseLost",
    "MemoryStore",
    "RecordStore",
    "Store",
    "open_store",
    "open_store_as",
    "sqlite_path",
]


def sqlite_path(url: str, home: Path) -> Path:
    """`sqlite:///rel/path` is relative to the bot home; `sqlite:////abs/path` is absolute."""
    path = Path(url.removeprefix("sqlite:///"))
    return path if path.is_absolute() else home / path


async def open_store(
    url: str,
    *,
    home: Path,
    lease: float = DEFAULT_LEASE,
    prefix: str = "botkit",
    pool_size: int | None = None,
    pool_timeout: float = 5.0,
) -> Store:
    """Open the store a URL names; optional backends are imported only when used.

    `lease` is how long a dead worker's locks and inbox items stay with it; `prefix`
    names a deployment's keys on a shared Redis; `pool_size` and `pool_timeout` bound
    the connections of Redis (default 100) and PostgreSQL (default 10: each is a server
    process, and the server allows 100 by default) and how long a call waits for a
    free one (for SQLite, for another process's lock on the file).
    """
    scheme = url.partition(":")[0]
    if scheme == "memory":
        return MemoryStore(lease=lease)
    if scheme == "sqlite" and url.startswith("sqlite:///"):
        from botkit.stores.sqlite import SqliteStore

        # A lock another process holds is SQLite's busy connection: the same wait applies.
        return await SqliteStore.open(
            sqlite_path(url, home), lease=lease, busy_timeout=pool_timeout
        )
    if scheme in ("redis", "rediss", "unix"):
        try:
            from botkit.stores.redis import RedisStore
        except ModuleNotFoundError as err:
            message = "the Redis store needs redis-py: pip install 'botkit[redis]'"
            raise ConfigError([Problem("BOTKIT_STORE_URL", message)]) from err
        return await RedisStore.open(
            url, prefix=prefix, lease=lease, pool_size=pool_size or 100, pool_timeout=pool_timeout
        )
    if scheme in ("postgresql", "postgres"):
        try:
            from botkit.stores.postgres import PostgresStore
        except ModuleNotFoundError as err:
            message = "the PostgreSQL store needs asyncpg: pip install 'botkit[postgres]'"
            raise ConfigError([Problem("BOTKIT_STORE_URL", message)]) from err
        return await PostgresStore.open(
            url, lease=lease, pool_size=pool_size or 10, pool_timeout=pool_timeout
        )
    raise ConfigError(
        [
            Problem(
                Path("BOTKIT_STORE_URL"),
                f"unsupported store URL scheme {scheme!r}: use memory://, sqlite:///PATH, "
                "redis://HOST:PORT/DB or postgresql://USER@HOST:PORT/DB",
            )
        ]
    )


async def open_store_as(settings: StoreSettings, *, home: Path) -> Store:
    """The store `settings` describe (the `BOTKIT_STORE_…` variables)."""
    return await open_store(
        settings.url,
        home=home,
        lease=settings.lease,
        prefix=settings.prefix,
        pool_size=settings.pool_size,
        pool_timeout=settings.pool_timeout,
    )
