"""Writing to the store in batches, once a second, so that recording what happened costs
the message path no trip to the store (the token meter, the outcome recorder)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Batches(ABC, Generic[K, V]):
    """Entries wait in `_pending` (one per key: a later one replaces or adds to it) until
    `flush`, which runs `flush_seconds` after the first of a batch, and on `aclose`."""

    lost = "could not write a batch; it is lost"
    """Logged (with the traceback) when a batch written in the background fails."""

    def __init__(self, *, flush_seconds: float = 1.0) -> None:
        self._flush_seconds = flush_seconds
        self._pending: dict[K, V] = {}
        self._flusher: asyncio.Task[None] | None = None

    @abstractmethod
    async def _write(self, entries: Sequence[V]) -> None:
        """Write one batch to the store."""

    def _keep(self, key: K, entry: V) -> None:
        self._pending[key] = entry
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())

    async def flush(self) -> None:
        """Write what is waiting now."""
        entries, self._pending = list(self._pending.values()), {}
        if entries:
            await self._write(entries)

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._flush_seconds)
        try:
            await self.flush()
        except Exception:
            logging.getLogger(type(self).__module__).exception(self.lost)
