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
from botkit.errors import ConfigError, Problem
from botkit.messages import Handoff, Turn

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


class WebhookDesk:
    """Posts each bot's handoff events to its `webhook_url` (a `botkit.handoff.Desk`)."""

    def __init__(
        self,
        *,
        urls: Mapping[str, str],
        secret: SecretStr,
        backoff: Sequence[float] = BACKOFF,
        timeout: float = TIMEOUT,
        grace: float = GRACE,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._urls = dict(urls)
        self._secret = secret
        self._backoff = tuple(backoff)
        self._grace = grace
        self._clock = clock
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._queues: dict[str, deque[DeskEvent]] = {}
        self._senders: set[asyncio.Task[None]] = set()

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
        self._send("handoff.requested", handoff, transcript=messages)
        return f"webhook:{handoff.id}"

    async def customer_message(self, handoff: Handoff, text: str) -> None:
        message = CustomerText(text=text, time=datetime.fromtimestamp(self._clock(), UTC))
        self._send("handoff.message", handoff, message=message)

    async def changed(self, handoff: Handoff) -> None:
        if handoff.state == "human":
            self._send("handoff.taken", handoff)
        elif handoff.outcome == "timeout":
            self._send("handoff.timeout", handoff)
        elif handoff.state == "resolved":  # resolved by a person, or cancelled by the customer
            self._send("handoff.resolved", handoff)

    async def delivery_failed(self, handoff: Handoff, reason: str) -> None:
        self._send("handoff.delivery_failed", handoff, failure=reason)

    # --- sending -------------------------------------------------------------------------

    def _send(self, kind: DeskEventType, handoff: Handoff, **fields: Any) -> None:
        """Queue the event behind the handoff's earlier ones; the caller never waits."""
        event = DeskEvent(
            id=f"evt_{secrets.token_urlsafe(12)}",
            type=kind,
            sent_at=0,
            handoff=HandoffInfo.of(handoff),
            **fields,
        )
        queue = self._queues.get(handoff.id)
        if queue is not None:
            queue.append(event)
            return
        self._queues[handoff.id] = deque([event])
        sender = asyncio.create_task(self._drain(handoff.bot, handoff.id))
        self._senders.add(sender)
        sender.add_done_callback(self._senders.discard)

    async def _drain(self, bot: str, handoff_id: str) -> None:
        queue = self._queues[handoff_id]
        try:
            while queue:
                try:
                    await self._deliver(self._urls[bot], queue[0])
                except Exception:  # a bug must not stop the handoff's later events
                    logger.exception("webhook desk: could not send %s", queue[0].type)
                queue.popleft()
        finally:
            del self._queues[handoff_id]

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
        """Give the events not yet sent `grace` seconds, then drop them (logged)."""
        if self._senders:
            _, late = await asyncio.wait(set(self._senders), timeout=self._grace)
            for sender in late:
                sender.cancel()
            if late:
                dropped = sum(len(queue) for queue in self._queues.values())
                logger.error("webhook desk: stopped with %d events not delivered", dropped)
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
    return WebhookDesk(urls=urls, secret=secret)


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
