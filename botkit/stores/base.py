"""The store interfaces every backend implements.

A backend (memory, SQLite, Redis, PostgreSQL) is one `Store`: one connection
serving everything workers must share, so workers sharing a backend share it all:

    ConversationStore   each conversation's turns, and a lease-based lock per
                        conversation whose token fences the holder's writes
    RecordStore         small JSON records with a time to live; atomic claims
    UsageLedger         tokens per day, bot, user, conversation and model
    RateCounter         shared rate limits (GCRA), one atomic update per take
    Inbox               accepted messages (and messages for customers) not yet
                        finished; whatever a dead worker held is taken up again
    HandoffStore        conversations handed to people, changed by compare-and-set
    OutcomeLog          what became of each customer message, and customers' votes on
                        the answers: what reports and transcripts read
    Erasure             deleting a conversation, or one person's part of it, and their
                        token rows: what `forget` and retention purges do
    Feed                "something changed" notices between workers

Leases (conversation locks and inbox items) last `lease` seconds and are renewed
by the store while held, so a worker that dies loses them within one lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

from botkit.errors import StoreError
from botkit.messages import Feedback, Handoff, Outcome, Turn

logger = logging.getLogger(__name__)
T = TypeVar("T", Outcome, Feedback)

DEFAULT_LEASE = 30.0
"""Seconds a lock or an inbox item stays with a worker that stopped renewing it."""
INBOX_TOPIC = "inbox"
"""Published when an item for any worker is added to the inbox."""


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


@dataclass(frozen=True, slots=True)
class InboxItem:
    """Work accepted but not finished: a customer's message to answer, or a message to
    deliver to a customer. `channel` is the channel that can carry it out."""

    id: str
    channel: str
    conversation: str
    payload: dict[str, Any]
    attempts: int = 1
    """How many times a worker has taken it (1 for the worker that accepted it)."""


class LeaseLost(StoreError):
    """A write was refused: the lock it was made under has passed to another worker."""


@dataclass(frozen=True, slots=True)
class Lease:
    """One holder's lock on one conversation; writes made with it are fenced by `token`."""

    key: str
    token: str


class ConversationStore(ABC):
    """Keeps each conversation's turns, oldest first, under a string key."""

    lease: float = DEFAULT_LEASE
    shared: bool = True
    """Whether other processes share the store (then leases are renewed while held)."""

    @abstractmethod
    async def recent(self, key: str, limit: int, *, max_tokens: int | None = None) -> list[Turn]:
        """The newest `limit` turns of the conversation, oldest first; with `max_tokens`,
        only as many of the newest as it takes to pass that many tokens (the rest could
        not fit in a prompt anyway: reading them would cost more the longer it grows)."""

    @abstractmethod
    async def append(self, key: str, turns: Sequence[Turn], *, lease: Lease | None = None) -> None:
        """Add turns at the end, in one write. With `lease`, the write happens only while
        that lease still holds the conversation's lock, else `LeaseLost` is raised."""

    @abstractmethod
    async def reset(self, key: str) -> None:
        """Forget the conversation."""

    @abstractmethod
    async def cursor(self, key: str) -> int:
        """A position after the conversation's newest turn, for `turns_since`."""

    @abstractmethod
    async def turns_since(self, key: str, cursor: int) -> tuple[int, list[Turn]]:
        """The turns stored after `cursor`, oldest first, and the cursor after them."""

    async def aclose(self) -> None:  # noqa: B027 - stores without resources need no close
        """Release connections; the store is unusable afterwards."""

    async def load(
        self,
        key: str,
        *,
        limit: int,
        idle_reset: float | None = None,
        max_tokens: int | None = None,
    ) -> list[Turn]:
        """The history to answer from: empty when the conversation sat idle too long."""
        turns = await self.recent(key, limit, max_tokens=max_tokens)
        if turns and idle_reset is not None and time.time() - turns[-1].at > idle_reset:
            await self.reset(key)
            return []
        return turns

    async def append_and_release(self, key: str, turns: Sequence[Turn], lease: Lease) -> None:
        """The last write under a lock: `append` the turns fenced by `lease`, and let go of
        the lock in the same write (SQLite: one transaction), so the `async with
        store.lock(key)` block then ends without another trip to the store. Raises
        `LeaseLost` as `append` does; the lock is then released as usual on exit."""
        keeper = _keeper(self)
        held = keeper.held_locks.pop(key, None)  # not renewed while it is being let go
        try:
            await self._append_and_unlock(key, turns, lease)
        except BaseException:
            if held is not None:
                keeper.held_locks[key] = held
            raise

    def lock(self, key: str) -> ConversationLock:
        """`async with store.lock(key) as lease:` holds the conversation for this worker alone,
        across every process sharing the store. Waiters in one process queue in order."""
        return ConversationLock(self, key)

    # The cross-process half of a lock; a store that serves one process needs none.

    async def _try_lock(self, lease: Lease) -> bool:
        """Take the lock for `lease.token` if nobody holds it or its holder's lease ran out."""
        return True

    async def _renew_lock(self, lease: Lease) -> bool:
        """Extend the lease; False when it was lost to another worker."""
        return True

    async def _unlock(self, lease: Lease) -> None:  # noqa: B027 - nothing to release
        """Release the lock if `lease` still holds it."""

    async def _append_and_unlock(self, key: str, turns: Sequence[Turn], lease: Lease) -> None:
        """`append` fenced by `lease`, then `_unlock`: as one write where the store can."""
        await self.append(key, turns, lease=lease)
        await asyncio.shield(self._unlock(lease))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class ConversationLock:
    """One conversation's lock: first the process's own queue (no polling between the
    messages of one worker), then the store's lease, renewed while it is held."""

    __slots__ = ("_store", "_key", "_lease", "_local")

    def __init__(self, store: ConversationStore, key: str) -> None:
        self._store = store
        self._key = key
        self._lease: Lease | None = None
        self._local: contextlib.AbstractAsyncContextManager[None] | None = None

    async def __aenter__(self) -> Lease:
        store = self._store
        keeper = _keeper(store)
        self._local = keeper.local.hold(self._key)
        await self._local.__aenter__()
        try:
            lease = Lease(self._key, secrets.token_hex(8))
            if not await store._try_lock(lease):
                await self._wait_for(lease)
        except BaseException:
            await self._local.__aexit__(None, None, None)
            raise
        self._lease = lease
        keeper.held_locks[lease.key] = lease
        return lease

    async def _wait_for(self, lease: Lease) -> None:
        """Another worker holds it: try again when it says it let go (a feed notice), or
        after a growing pause (its process may have died; notices may be lost)."""
        store = self._store
        assert isinstance(store, Feed)
        async with store.subscribe(f"lock:{lease.key}") as released:
            delay = 0.005
            while not await store._try_lock(lease):
                await released.wait(delay)
                delay = min(delay * 2, 0.25)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._local is not None and self._lease is not None
        store = self._store
        keeper = _keeper(store)
        held = keeper.held_locks.pop(self._key, None)  # None: `append_and_release` let go
        try:
            if held is not None:
                await asyncio.shield(store._unlock(held))
            if store.shared and isinstance(store, Feed):
                await store.publish(f"lock:{self._key}")
        except StoreError as err:  # the lease runs out on its own
            logger.warning("could not release the lock of %s: %s", self._key, err)
        finally:
            await self._local.__aexit__(exc_type, exc, tb)


class LeaseKeeper:
    """Renews a store's held leases (locks and inbox items) every third of a lease."""

    def __init__(self, store: ConversationStore) -> None:
        from botkit.locks import ConversationLocks

        self.local = ConversationLocks()
        self.held_locks: dict[str, Lease] = {}
        self.held_items: dict[str, InboxItem] = {}
        self._store = store
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="botkit-lease-keeper")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._store.lease / 3)
            try:
                await self.renew()
            except StoreError as err:
                logger.warning("could not renew leases: %s", err)

    async def renew(self) -> None:
        for lease in list(self.held_locks.values()):
            if not await self._store._renew_lock(lease):
                logger.warning("lost the lock of %s to another worker", lease.key)
        if self.held_items and isinstance(self._store, Inbox):
            held = list(self.held_items.values())
            renewed = await self._store._renew_items(held)
            for item in held:
                if item.id not in renewed and self.held_items.pop(item.id, None) is not None:
                    logger.warning("inbox item %s passed to another worker", item.id)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _keeper(store: ConversationStore) -> LeaseKeeper:
    keeper: LeaseKeeper | None = store.__dict__.get("_lease_keeper")
    if keeper is None:
        keeper = store.__dict__["_lease_keeper"] = LeaseKeeper(store)
    if store.shared:
        keeper.start()
    return keeper


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


class RateCounter(ABC):
    """Shared rate limits as a generic cell rate algorithm: one stored time per key."""

    @abstractmethod
    async def take_rate(
        self, key: str, cost: float, *, rate: float, burst: float, max_wait: float
    ) -> float:
        """Reserve `cost` units of a budget refilled at `rate` units a second, holding at
        most `burst`, and return how long to wait before using them (0: at once).

        When the wait would exceed `max_wait` nothing is reserved, and the result says
        how long until the same take would go through. A negative `cost` gives back.
        """


class Inbox(ABC):
    """Accepted work, kept until it is done, so a worker's death loses none of it.

    The worker that adds an item owns it while the store renews its lease; an item
    whose lease ran out, or that was added for any worker (`owned=False`), is taken
    by the next `inbox_take` of a worker serving its channel.
    """

    @abstractmethod
    async def inbox_add(
        self,
        *,
        channel: str,
        conversation: str,
        payload: dict[str, Any],
        dedupe: str | None = None,
        owned: bool = True,
    ) -> InboxItem | None:
        """Add an item; None when an item with the same `dedupe` key was added in the last
        day (a platform delivering the same message again)."""

    @abstractmethod
    async def inbox_take(self, channels: Sequence[str], *, limit: int = 20) -> list[InboxItem]:
        """Items of these channels nobody holds, now held by this worker, oldest first."""

    @abstractmethod
    async def inbox_done(self, item: InboxItem) -> None:
        """The item is finished: forget it."""

    @abstractmethod
    async def inbox_later(self, item: InboxItem, *, delay: float) -> None:
        """Let go of the item; any worker may take it again after `delay` seconds."""

    @abstractmethod
    async def _renew_items(self, items: Sequence[InboxItem]) -> set[str]:
        """Extend the leases of the items that are still this worker's; their ids. (An item
        whose lease ran out may have been taken by another worker: it is not taken back.)"""

    def _hold(self, item: InboxItem) -> InboxItem:
        if isinstance(self, ConversationStore):
            _keeper(self).held_items[item.id] = item
        return item

    def _release(self, item: InboxItem) -> None:
        if isinstance(self, ConversationStore):
            _keeper(self).held_items.pop(item.id, None)


class HandoffStore(ABC):
    """Conversations handed to people; a conversation has at most one open handoff."""

    @abstractmethod
    async def handoff_open(self, handoff: Handoff) -> Handoff:
        """Store a new open handoff, or return the one already open for its conversation."""

    @abstractmethod
    async def handoff_get(self, handoff_id: str) -> Handoff | None: ...

    @abstractmethod
    async def handoff_current(self, conversation: str) -> Handoff | None:
        """The conversation's open handoff, if it has one."""

    @abstractmethod
    async def handoff_by_desk(self, desk_ref: str) -> Handoff | None:
        """The handoff (open or not) a desk shows at `desk_ref`."""

    @abstractmethod
    async def handoff_update(self, handoff: Handoff) -> Handoff | None:
        """Store `handoff` if the stored one still has its `version`; the stored result
        (version + 1), or None when someone else changed it first."""

    @abstractmethod
    async def handoffs_open(self, bot: str | None = None) -> list[Handoff]:
        """Every open handoff (of one bot), oldest first."""


class OutcomeLog(ABC):
    """What became of each customer message (`Outcome`: one per conversation and message
    id) and what customers thought of the answers (`Feedback`: one vote per answer).

    Outcomes arrive in batches (see `botkit.outcomes`), so recording them costs the
    message path nothing. Every query takes the filters it is given together; times
    are seconds since the epoch, `since` included and `until` not; results come
    oldest first.
    """

    @abstractmethod
    async def add_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Record outcomes in one write; a message's outcome replaces an earlier one."""

    @abstractmethod
    async def outcomes(
        self,
        *,
        bot: str | None = None,
        since: float | None = None,
        until: float | None = None,
        user: str | None = None,
        conversation: str | None = None,
    ) -> list[Outcome]: ...

    @abstractmethod
    async def put_feedback(self, feedback: Feedback) -> None:
        """Record a vote; it replaces any earlier vote on the same answer."""

    @abstractmethod
    async def feedback(
        self,
        *,
        bot: str | None = None,
        since: float | None = None,
        until: float | None = None,
        user: str | None = None,
        conversation: str | None = None,
    ) -> list[Feedback]:
        """Votes matching the filters (`user` is the voter), oldest first."""

    @abstractmethod
    async def idle_conversations(self, *, bot: str, before: float) -> list[str]:
        """The conversations of `bot` whose newest outcome is older than `before`."""


class Erasure(ABC):
    """Deleting what the store keeps about people, so that nothing of it is left."""

    @abstractmethod
    async def erase(
        self, conversation: str, *, user: str | None = None, messages: Sequence[str] = ()
    ) -> list[str]:
        """Delete a conversation: without `user`, all of it (its turns, outcomes, feedback
        and handoffs). With `user`, only that person's part of a conversation others
        share: the turns of `messages` (their messages, and the answers to them), those
        messages' outcomes and feedback, the votes `user` gave there, and the handoffs
        `user` started. The ids of the handoffs deleted (a desk may keep its own copy)."""

    @abstractmethod
    async def erase_usage(self, *, user: str, bot: str | None = None) -> int:
        """Take a user's name off the token ledger (of one bot, or all): their rows become
        part of an anonymous row per day, bot and model (user and conversation ""), so the
        totals and their cost stay right. How many rows named them."""


class Feed:
    """Notices that a topic changed (a conversation got a turn, work is waiting): the
    reader then looks in the store. Stores that cannot notify other processes let
    `wait` return every `poll` seconds, so readers look again anyway."""

    poll: float = 5.0

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None

    async def publish(self, topic: str) -> None:
        """Wake this process's readers of `topic`, and those of other processes."""
        self._wake(topic)
        await self._publish_remote(topic)

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        event = asyncio.Event()
        self._waiters.setdefault(topic, set()).add(event)
        await self._listening()
        try:
            yield Subscription(event, self.poll)
        finally:
            waiters = self._waiters.get(topic)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[topic]

    def _wake(self, topic: str) -> None:
        for event in self._waiters.get(topic, ()):
            event.set()

    async def _publish_remote(self, topic: str) -> None:  # noqa: B027 - one process: nothing to do
        """Tell other processes."""

    async def _listening(self) -> None:
        """Make sure notices from other processes reach `_wake`: `_listen` runs on a task
        of its own from the first subscription on (and again if it ended)."""
        if type(self)._listen is Feed._listen:
            return
        if self._listener is None or self._listener.done():
            ready = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(ready), name="botkit-feed")
            await ready.wait()

    async def _listen(self, ready: asyncio.Event) -> None:
        """Hand other processes' notices to `_wake` until cancelled, setting `ready` once
        listening (or once it cannot: readers then poll). One process: nothing to do."""
        ready.set()

    async def _stop_listening(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None


class Subscription:
    """`await subscription.wait(within)` returns when the topic changed, or after at most
    `within` seconds (or the store's poll interval, when shorter)."""

    def __init__(self, event: asyncio.Event, poll: float) -> None:
        self._event = event
        self._poll = poll

    async def wait(self, within: float) -> bool:
        """True when notified (it may have changed anyway: look in the store either way)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(within, self._poll)):
                await self._event.wait()
        notified = self._event.is_set()
        self._event.clear()
        return notified


class Store(
    ConversationStore,
    RecordStore,
    UsageLedger,
    RateCounter,
    Inbox,
    HandoffStore,
    OutcomeLog,
    Erasure,
    Feed,
):
    """One backend serving every interface."""

    def __init__(self, *, lease: float = DEFAULT_LEASE) -> None:
        Feed.__init__(self)
        self.lease = lease

    async def aclose(self) -> None:
        keeper: LeaseKeeper | None = self.__dict__.get("_lease_keeper")
        if keeper is not None:
            await keeper.aclose()
        await self._stop_listening()


@dataclass(frozen=True, slots=True)
class Wanted:
    """An `OutcomeLog` query's filters, as a test of one outcome or vote (for stores that
    filter in Python)."""

    bot: str | None = None
    since: float | None = None
    until: float | None = None
    user: str | None = None
    conversation: str | None = None

    def __call__(self, item: Outcome | Feedback) -> bool:
        return (
            self.bot in (None, item.bot)
            and self.user in (None, item.user)
            and self.conversation in (None, item.conversation)
            and (self.since is None or item.at >= self.since)
            and (self.until is None or item.at < self.until)
        )


def in_order(items: list[T]) -> list[T]:
    """Outcomes or votes oldest first (ties by conversation and message)."""
    return sorted(items, key=_order)


def _order(item: Outcome | Feedback) -> tuple[float, str, str]:
    return (item.at, item.conversation, item.message_id)


def gcra(
    tat: float | None, now: float, cost: float, rate: float, burst: float
) -> tuple[float, float]:
    """The generic cell rate algorithm: (the theoretical arrival time after taking `cost`,
    the wait before it may be used). Stores that cannot run it where the data is use this."""
    new_tat = max(tat if tat is not None else now, now) + cost / rate
    return new_tat, max(0.0, new_tat - burst / rate - now)


def within_tokens(newest_first: Sequence[Turn], max_tokens: int | None) -> int:
    """How many of the newest turns it takes to pass `max_tokens` (all, without a bound)."""
    if max_tokens is None:
        return len(newest_first)
    used = 0
    for count, turn in enumerate(newest_first, start=1):
        used += turn.tokens
        if used > max_tokens:
            return count
    return len(newest_first)
