"""Taking up the inbox: whatever a worker accepted and did not finish, and messages from
people for customers, carried out by a worker serving the item's channel.

An item comes back when the worker holding it stops renewing its lease (it died),
or when it was added for any worker (a person's reply for a Telegram customer,
say). Each is taken by one worker at a time; a failure is tried again later, a
few times, and a delivery the customer's platform refuses for good is reported to
the people who wrote it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from botkit.errors import DeliveryError
from botkit.handoff import Handoffs
from botkit.locks import ConversationLocks
from botkit.stores.base import INBOX_TOPIC, InboxItem, Store

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
"""An item that failed this many times is dropped (and logged), never retried forever."""


@runtime_checkable
class Resumes(Protocol):
    """A channel that can carry out its inbox items."""

    async def resume(self, item: InboxItem) -> None:
        """Answer a message taken up again (`kind` "message"), or deliver a message to a
        customer (`kind` "deliver"; raise `DeliveryError` when their platform refuses)."""
        ...


class InboxWorker:
    """Takes up the items of the bots and channels a process serves, until cancelled.

    `channels` maps each channel's name to it and the bots it serves; an item is
    for one bot on one channel (see `botkit.pipeline.inbox_channel`).
    """

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, tuple[Resumes, Sequence[str]]],
        *,
        handoffs: Handoffs | None = None,
        poll: float = 1.0,
        retry_delay: float = 5.0,
        grace: float = 10.0,
    ) -> None:
        self._store = store
        self._channels = {
            f"{name}/{bot}": channel for name, (channel, bots) in channels.items() for bot in bots
        }
        self._handoffs = handoffs
        self._poll = poll
        self._retry_delay = retry_delay
        self._grace = grace
        self._running: set[asyncio.Task[None]] = set()
        # One conversation's items are carried out in the order they were taken (a person's
        # "joined" notice before their first message), different conversations at once.
        self._order = ConversationLocks()

    async def run(self) -> None:
        if not self._channels:
            return
        names = sorted(self._channels)
        async with self._store.subscribe(INBOX_TOPIC) as added:
            while True:
                try:
                    for item in await self._store.inbox_take(names):
                        task = asyncio.create_task(self._carry_out(item))
                        self._running.add(task)
                        task.add_done_callback(self._running.discard)
                except Exception as err:  # the store is down: look again later
                    logger.warning("cannot look in the inbox: %s", err)
                await added.wait(self._poll)

    async def _carry_out(self, item: InboxItem) -> None:
        channel = self._channels[item.channel]
        async with self._order.hold(item.conversation):
            await settle(
                self._store,
                item,
                channel.resume(item),
                handoffs=self._handoffs,
                retry_delay=self._retry_delay,
            )

    async def aclose(self) -> None:
        """Let the items under way finish (a bounded wait); the rest come back later."""
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=self._grace)
            for task in late:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*late, return_exceptions=True)


async def settle(
    store: Store,
    item: InboxItem,
    work: Awaitable[None],
    *,
    handoffs: Handoffs | None = None,
    retry_delay: float = 5.0,
) -> None:
    """Carry out an inbox item's work: done when it succeeds; when it fails, tried again
    after a delay (up to `MAX_ATTEMPTS`); a delivery refused for good is reported to the
    handoff's desk. Never raises (but for cancellation): failures are logged."""
    try:
        try:
            await work
        except DeliveryError as err:
            await store.inbox_done(item)
            handoff = item.payload.get("handoff")
            if handoffs is not None and isinstance(handoff, str):
                await handoffs.delivery_failed(handoff, str(err))
            return
        except Exception as err:
            if item.attempts >= MAX_ATTEMPTS:
                logger.error(
                    "gave up on inbox item %s (%s) after %d attempts: %s",
                    item.id,
                    item.payload.get("kind"),
                    item.attempts,
                    err,
                )
                await store.inbox_done(item)
            else:
                logger.warning("inbox item %s failed (%s); trying again later", item.id, err)
                await store.inbox_later(item, delay=retry_delay * item.attempts)
            return
        await store.inbox_done(item)
    except Exception:  # the store failed us: the item's lease runs out, and it comes back
        logger.exception("inbox item %s: could not record its outcome", item.id)
