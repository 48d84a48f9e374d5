"""The store interfaces every backend implements: conversations, small records, usage.

A backend (memory, SQLite, Redis) is one `Store`: one connection serving the
pipeline's conversations, the channels' records (web sessions, the Slack events
already answered) and the token ledger, so workers sharing a backend share all three.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from botkit.messages import Turn


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """Tokens spent by one bot for one user's conversation on one day (UTC, YYYY-MM-DD)."""

    day: str
    bot: str
    user: str
    conversation: str
    model: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class UsageTotal:
    day: str
    bot: str
    model: str
    prompt_tokens: int
    completion_tokens: int


class ConversationStore(ABC):
    """Keeps each conversation's turns, oldest first, under a string key."""

    @abstractmethod
    async def recent(self, key: str, limit: int) -> list[Turn]:
        """The newest `limit` turns of the conversation, oldest first."""

    @abstractmethod
    async def append(self, key: str, turns: Sequence[Turn]) -> None:
        """Add turns at the end, in one write."""

    @abstractmethod
    async def reset(self, key: str) -> None:
        """Forget the conversation."""

    async def aclose(self) -> None:  # noqa: B027 - stores without resources need no close
        """Release connections; the store is unusable afterwards."""

    async def load(self, key: str, *, limit: int, idle_reset: float | None = None) -> list[Turn]:
        """The history to answer from: empty when the conversation sat idle too long."""
        turns = await self.recent(key, limit)
        if turns and idle_reset is not None and time.time() - turns[-1].at > idle_reset:
            await self.reset(key)
            return []
        return turns

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class RecordStore(ABC):
    """JSON-able records under string keys, each with an optional time to live."""

    @abstractmethod
    async def get_record(self, key: str) -> dict[str, Any] | None:
        """The record, or None when it is absent or expired."""

    @abstractmethod
    async def put_record(
        self, key: str, value: dict[str, Any], *, ttl: float | None = None
    ) -> None:
        """Create or replace a record; it expires after `ttl` seconds when given."""

    @abstractmethod
    async def delete_record(self, key: str) -> bool:
        """Remove a record; True when there was one."""

    @abstractmethod
    async def claim(self, key: str, *, ttl: float) -> bool:
        """True for the first claim of `key` within `ttl` seconds, False for every repeat.

        Atomic across every process sharing the backend: how a re-delivered
        event is recognised and dropped exactly once.
        """


class UsageLedger(ABC):
    """Token counts per day, bot, user, conversation and model, summed as they are added."""

    @abstractmethod
    async def add_usage(self, records: Sequence[UsageRecord]) -> None:
        """Add the records' tokens to the running totals."""

    @abstractmethod
    async def usage_totals(self, *, since: str, bot: str | None = None) -> list[UsageTotal]:
        """Totals per day, bot and model from day `since` on, oldest first."""

    @abstractmethod
    async def tokens_used(self, *, day: str, bot: str, user: str | None = None) -> int:
        """All tokens a bot (or one of its users) spent on `day`."""


class Store(ConversationStore, RecordStore, UsageLedger):
    """One backend serving every interface."""
