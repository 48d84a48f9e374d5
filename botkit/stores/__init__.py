"""Stores, chosen by URL: `memory://`, `sqlite:///PATH`, `redis://host:port/db`."""

from __future__ import annotations

from pathlib import Path

from botkit.errors import ConfigError, Problem
from botkit.stores.base import ConversationStore, RecordStore, Store
from botkit.stores.memory import MemoryStore

__all__ = ["ConversationStore", "MemoryStore", "RecordStore", "Store", "open_store", "sqlite_path"]


def sqlite_path(url: str, home: Path) -> Path:
    """`sqlite:///rel/path` is relative to the bot home; `sqlite:////abs/path` is absolute."""
    path = Path(url.removeprefix("sqlite:///"))
    return path if path.is_absolute() else home / path


async def open_store(url: str, *, home: Path) -> Store:
    """Open the store a URL names; optional backends are imported only when used."""
    scheme = url.partition(":")[0]
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite" and url.startswith("sqlite:///"):
        from botkit.stores.sqlite import SqliteStore

        return await SqliteStore.open(sqlite_path(url, home))
    if scheme in ("redis", "rediss", "unix"):
        try:
            from botkit.stores.redis import RedisStore
        except ModuleNotFoundError as err:
            message = "the Redis store needs redis-py: pip install 'botkit[redis]'"
            raise ConfigError([Problem("BOTKIT_STORE_URL", message)]) from err
        return await RedisStore.open(url)
    raise ConfigError(
        [
            Problem(
                Path("BOTKIT_STORE_URL"),
                f"unsupported store URL scheme {scheme!r}: use memory://, sqlite:///PATH "
                "or redis://HOST:PORT/DB",
            )
        ]
    )
