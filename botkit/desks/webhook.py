"""The webhook desk: any helpdesk, told of handoffs by signed JSON events and answering
through the handoffs API (`botkit.adapters.web.handoffs`).

    [handoff]
    desk = "webhook"
    webhook_url = "https://helpdesk.example.com/botkit"

Each event is POSTed to the bot's `webhook_url` with `X-Botkit-Signature:
sha256=<hex>`, the HMAC-SHA256 of the raw body under BOTKIT_HANDOFF_WEBHOOK_SECRET;
the body's `sent_at` (signed with it) lets the receiver refuse replays, and its `id`
stays the same on every retry. Events are sent in the background, never on the
customer's message path: an event that fails (no 2xx in 10 s) is tried again with
growing pauses for about two minutes, then logged and dropped. Each handoff's events
are sent in order, one at a time; different handoffs' in parallel.

Each event is kept in the store's inbox until it is sent (or given up): when its worker
stops or dies first, a worker serving the bot sends it (`resume`), with the same id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from botkit.adapters.web.schemas import (
    CustomerText,
    DeskEvent,
    DeskEventType,
    HandoffInfo,
    SessionMessage,
)
from botkit.errors import ConfigError, Problem, StoreError
from botkit.messages import Handoff, Turn
from botkit.pipeline import inbox_channel
from botkit.stores.base import Inbox, InboxItem

if TYPE_CHECKING:
    from botkit.adapters import Channel, ServeOptions
    from botkit.app import BotApp

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Botkit-Signature"
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
"""Pauses before each retry of an event (about two minutes in all)."""
TIMEOUT = 10.0
"""Seconds the receiver has to answer one attempt."""
GRACE = 5.0
"""Seconds a stopping worker gives the events not yet sent."""


def sign(body: bytes, secret: str) -> str:
    """The `X-Botkit-Signature` of a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


INBOX = "webhook-desk"
"""The inbox's channel name for events kept until they are sent (`INBOX/bot`)."""


class WebhookDesk:
    """Posts each bot's handoff events to its `webhook_url` (a `botkit.handoff.Desk`).

    With a `store`, each event waits in its inbox until it is sent, and this desk sends
    the events other workers kept and could not (`resume`, run by the inbox worker).
    """

    inbox = INBOX

    def __init__(
        self,
        *,
        urls: Mapping[str, str],
        secret: SecretStr,
        store: Inbox | None = None,
        backoff: Sequence[float] = BACKOFF,
        timeout: float = TIMEOUT,
        grace: float = GRACE,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._urls = dict(urls)
        self._secret = secret
        self._store = store
        self._backoff = tuple(backoff)
        self._grace = grace
        self._clock = clock
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._queues: dict[str, deque[tuple[DeskEvent, asyncio.Future[InboxItem | None]]]] = {}
        self._senders: set[asyncio.Task[None]] = set()

    @property
    def bots(self) -> list[str]:
        """The bots whose events this desk sends."""
        return sorted(self._urls)

    # --- botkit.handoff.Desk -------------------------------------------------------------

    async def requested(self, handoff: Handoff, transcript: Sequence[Turn]) -> str | None:
        messages = [
            SessionMessage(
                role=turn.role,
                content=turn.content,
                time=datetime.fromtimestamp(turn.at, UTC),
                name=turn.name,
                kind=turn.kind,
            )
            for turn in transcript
        ]
        await self._send("handoff.requested", handoff, transcript=messages)
        return f"webhook:{handoff.id}"

    async def customer_message(self, handoff: Handoff, text: str) -> None:
        message = CustomerText(text=text, time=datetime.fromtimestamp(self._clock(), UTC))
        await self._send("handoff.message", handoff, message=message)

    async def changed(self, handoff: Handoff) -> None:
        if handoff.state == "human":
            await self._send("handoff.taken", handoff)
        elif handoff.outcome == "timeout":
            await self._send("handoff.timeout", handoff)
        elif handoff.state == "resolved":  # resolved by a person, or cancelled by the customer
            await self._send("handoff.resolved", handoff)

    async def delivery_failed(self, handoff: Handoff, reason: str) -> None:
        await self._send("handoff.delivery_failed", handoff, failure=reason)

    # --- sending -------------------------------------------------------------------------

    async def _send(self, kind: DeskEventType, handoff: Handoff, **fields: Any) -> None:
        """Keep the event, and queue it behind the handoff's earlier ones; the caller waits
        for the store's write, never for the helpdesk."""
        event = DeskEvent(
            id=f"evt_{secrets.token_urlsafe(12)}",
            type=kind,
            sent_at=0,
            handoff=HandoffInfo.of(handoff),
            **fields,
        )
        # Queued before the store's write, which concurrent calls may finish in any order.
        kept = asyncio.ensure_future(self._keep(handoff.bot, event))
        queue = self._queues.get(handoff.id)
        if queue is not None:
            queue.append((event, kept))
        else:
            self._queues[handoff.id] = deque([(event, kept)])
            sender = asyncio.create_task(self._drain(handoff.bot, handoff.id))
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        await asyncio.shield(kept)

    async def _keep(self, bot: str, event: DeskEvent) -> InboxItem | None:
        """The event in the inbox, held by this worker while it sends it."""
        if self._store is None:
            return None
        try:
            return await self._store.inbox_add(
                channel=inbox_channel(INBOX, bot),
                conversation=event.handoff.handoff_id,
                payload={"kind": "desk_event", "event": event.model_dump(mode="json")},
            )
        except StoreError as err:
            logger.warning("webhook desk: %s not kept (%s); sending it anyway", event.type, err)
            return None

    async def _drain(self, bot: str, handoff_id: str) -> None:
        queue = self._queues[handoff_id]
        try:
            while queue:
                event, keeping = queue[0]
                try:
                    await self._deliver(self._urls[bot], event)
                except Exception:  # a bug must not stop the handoff's later events
                    logger.exception("webhook desk: could not send %s", event.type)
                queue.popleft()
                kept = await keeping
                if kept is not None and self._store is not None:
                    try:
                        await self._store.inbox_done(kept)
                    except StoreError as err:  # its lease runs out: it is sent once more
                        logger.warning("webhook desk: %s sent, not forgotten: %s", event.type, err)
        finally:
            del self._queues[handoff_id]

    async def resume(self, item: InboxItem) -> None:
        """Send an event another worker kept and did not send (it stopped, or died)."""
        event = DeskEvent.model_validate(item.payload["event"])
        url = self._urls.get(event.handoff.bot)
        if url is None:  # the bot no longer has this desk
            logger.warning("webhook desk: %s for bot %s dropped", event.type, event.handoff.bot)
            return
        await self._deliver(url, event)

    async def _deliver(self, url: str, event: DeskEvent) -> None:
        """Post one event until the receiver takes it, or the retries run out (logged)."""
        where = _where(url)
        problem = ""
        for attempt, pause in enumerate((0.0, *self._backoff), start=1):
            await asyncio.sleep(pause)
            body = event.model_copy(update={"sent_at": int(self._clock())}).model_dump_json(
                exclude_none=True
            )
            raw = body.encode()
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(raw, self._secret.get_secret_value()),
                "X-Botkit-Event": event.type,
                "User-Agent": "botkit-webhook-desk",
            }
            try:
                response = await self._client.post(url, content=raw, headers=headers)
            except httpx.HTTPError as err:
                problem = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            else:
                if response.is_success:
                    return
                problem = f"HTTP {response.status_code}"
                if response.is_client_error and response.status_code not in (408, 429):
                    break  # the receiver refuses it: trying again cannot help
            if attempt <= len(self._backoff):
                logger.warning(
                    "webhook desk: %s for handoff %s not taken by %s (%s); trying again in %g s",
                    event.type,
                    event.handoff.handoff_id,
                    where,
                    problem,
                    self._backoff[attempt - 1],
                )
        logger.error(
            "webhook desk: gave up on %s (event %s) for handoff %s: %s answered %s",
            event.type,
            event.id,
            event.handoff.handoff_id,
            where,
            problem,
        )

    async def aclose(self) -> None:
        """Give the events not yet sent `grace` seconds; the rest stay in the inbox for
        the next worker (without a store: they are dropped, logged)."""
        if self._senders:
            _, late = await asyncio.wait(set(self._senders), timeout=self._grace)
            for sender in late:
                sender.cancel()
            if late:
                left = sum(len(queue) for queue in self._queues.values())
                if self._store is None:
                    logger.error("webhook desk: stopped with %d events not delivered", left)
                else:
                    logger.warning(
                        "webhook desk: stopped with %d events not yet delivered; they stay "
                        "in the store, and the next worker serving their bots sends them",
                        left,
                    )
                await asyncio.wait(late)
        await self._client.aclose()


def _where(url: str) -> str:
    """The URL without credentials or query, for logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


def desk(app: BotApp) -> WebhookDesk:
    urls = {
        bot.name: bot.settings.handoff.webhook_url
        for bot in app.bots
        if bot.settings.handoff is not None
        and bot.settings.handoff.desk == "webhook"
        and bot.settings.handoff.webhook_url is not None
    }
    secret = app.settings.handoff.webhook_secret
    if secret is None or not secret.get_secret_value():
        names = ", ".join(f"bots/{name}.toml" for name in sorted(urls))
        message = (
            f'required for desk = "webhook" ({names}): the key its events are signed with, '
            "so the helpdesk can tell them from forgeries"
        )
        raise ConfigError([Problem("BOTKIT_HANDOFF_WEBHOOK_SECRET", message)])
    return WebhookDesk(urls=urls, secret=secret, store=app.store)


def serve(app: BotApp, options: ServeOptions) -> Channel:
    """People's way back in: the handoffs API on the shared HTTP server."""
    from botkit.adapters.web.api import KeyAccess
    from botkit.adapters.web.handoffs import HandoffsApi

    bots = {
        bot.name
        for bot in app.bots
        if bot.settings.handoff is not None and bot.settings.handoff.desk == "webhook"
    }
    web = app.settings.web
    if not web.keys:
        logger.warning("no BOTKIT_WEB_API_KEYS set: the handoffs API refuses everyone (401)")
    return HandoffsApi(
        handoffs=app.handoffs,
        bots=bots,
        access=KeyAccess(web.keys),
        max_message_chars=web.max_message_chars,
    )
