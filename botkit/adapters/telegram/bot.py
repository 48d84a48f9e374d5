"""One botkit bot on Telegram, as `botkit serve` runs it: a python-telegram-bot
`Application` of its own, fed by long polling or by the webhook route, whose one handler
is botkit's (`handler.py`, what `botkit.telegram.handler` gives a library user).

Every update for the bot goes into the store's inbox before Telegram is told it
arrived: polling confirms an update's offset only once its `put` on the update
queue returns, and the webhook answers 200 only then, so a worker that dies
leaves its updates to another. Every update is checked first (`updates.py`): one
whose fields botkit cannot read is logged in one line and confirmed, since refusing
it would only bring it back.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from telegram import BotCommand, Update
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError
from telegram.ext import AIORateLimiter, Application

from botkit.adapters.telegram.feedback import FeedbackButtons
from botkit.adapters.telegram.handler import TelegramHandler, Timing
from botkit.adapters.telegram.updates import CheckedUpdates, log_unreadable, read_update
from botkit.errors import ConfigError, PayloadError, Problem, StoreError
from botkit.stores.base import InboxItem

if TYPE_CHECKING:
    from botkit.feedback import Votes
    from botkit.pipeline import Pipeline

logger = logging.getLogger(__name__)

__all__ = ["TelegramBot", "Timing"]

COMMANDS = {
    "start": "Start the conversation",
    "help": "What I can help with",
    "reset": "Forget our conversation and start fresh",
}
HANDOFF_COMMAND = {"human": "Talk to a person"}
ALLOWED_UPDATES = ["message", "callback_query"]  # callback queries: the feedback buttons
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPDATE_BYTES = 1 << 20


class TelegramBot:
    """One botkit bot on Telegram: its own `Application`, with botkit's handler."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        votes: Votes,
        token: str,
        base_url: str,
        webhook_url: str | None,
        secret: str,
        timing: Timing,
        max_retries: int,
    ) -> None:
        self.name = pipeline.bot.name
        self.webhook_url = webhook_url
        self._pipeline = pipeline
        self._secret = secret
        self._timing = timing
        self.handler = TelegramHandler(pipeline, timing=timing, block=True, inbox_first=True)
        builder = (
            Application.builder()
            .token(token)
            .base_url(f"{base_url}/bot")
            .base_file_url(f"{base_url}/file/bot")
            .rate_limiter(AIORateLimiter(max_retries=max_retries))
            .concurrent_updates(True)
            .update_queue(_InboxQueue(self.handler))
            .get_updates_request(CheckedUpdates(self.name))
        )
        self.application = (builder.updater(None) if webhook_url else builder).build()
        self.handler.bot = self.application.bot
        self.buttons = FeedbackButtons(
            bot=self.name,
            votes=votes,
            telegram=self.application.bot,
            shutdown_timeout=timing.shutdown_timeout,
        )
        self.handler.buttons = self.buttons
        self.application.add_handler(self.handler)
        self.application.add_error_handler(self._on_error)
        self._started = False
        self._closing = False

    def route(self) -> Route:
        assert self.webhook_url is not None
        return Route(urlsplit(self.webhook_url).path, self._webhook, methods=["POST"])

    async def run(self) -> None:
        """Connect, then take updates until cancelled."""
        app = self.application
        await self._initialize()
        self._started = True
        commands = COMMANDS | (HANDOFF_COMMAND if self._pipeline.handoffs else {})
        try:
            await app.bot.set_my_commands([BotCommand(c, d) for c, d in commands.items()])
        except TelegramError as err:
            logger.warning("bot %s: could not register its commands: %s", self.name, err)
        await app.start()
        if self.webhook_url:
            await self._set_webhook(self.webhook_url)
        else:
            assert app.updater is not None
            await app.updater.start_polling(
                timeout=timedelta(seconds=self._timing.poll_timeout),
                allowed_updates=ALLOWED_UPDATES,
                bootstrap_retries=-1,
                error_callback=self._polling_failed,
            )
        how = f"webhook {self.webhook_url}" if self.webhook_url else "long polling"
        logger.info("bot %s is on Telegram as @%s (%s)", self.name, app.bot.username, how)
        await asyncio.get_running_loop().create_future()

    async def resume(self, item: InboxItem) -> None:
        """A message a dead worker accepted, or a person's message for the customer."""
        await self.handler.resume(item)

    async def _initialize(self) -> None:
        delay = 1.0
        while True:
            try:
                await self.application.initialize()
                return
            except InvalidToken:
                # Not `from err`: python-telegram-bot's message quotes the token.
                message = f"Telegram rejected the token of bot {self.name!r}"
                raise ConfigError([Problem("TELEGRAM_BOT_TOKEN", message)]) from None
            except NetworkError as err:
                logger.warning(
                    "bot %s: cannot reach Telegram (%s); trying again in %.0f s",
                    self.name,
                    err,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _set_webhook(self, url: str) -> None:
        try:
            await self.application.bot.set_webhook(
                url, secret_token=self._secret, allowed_updates=ALLOWED_UPDATES
            )
        except BadRequest as err:
            message = f"Telegram refused the webhook {url}: {err.message}"
            raise ConfigError([Problem("--webhook", message)]) from err

    def _polling_failed(self, err: TelegramError) -> None:
        logger.warning("bot %s: polling Telegram failed (%s); retrying", self.name, err)

    async def _webhook(self, request: Request) -> Response:
        if self._closing:
            return PlainTextResponse("shutting down", 503)  # Telegram delivers it again later
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            return PlainTextResponse(f"missing {SECRET_HEADER}", 401)
        if not hmac.compare_digest(given.encode(), self._secret.encode()):
            return PlainTextResponse(f"wrong {SECRET_HEADER}", 403)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_UPDATE_BYTES:
                return PlainTextResponse("too large for a Telegram update", 413)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as err:  # RecursionError: nested too deeply
            return PlainTextResponse(f"not a Telegram update: {err}", 400)
        if not isinstance(data, dict):
            return PlainTextResponse("not a Telegram update: expected a JSON object", 400)
        try:
            update = read_update(data, self.application.bot)
        except PayloadError as err:
            log_unreadable(self.name, data, err)
            return Response(status_code=200)  # an error would only make Telegram send it again
        if not self._started:
            admitted = False  # Telegram resends it once the bot answers
        else:
            try:
                admitted = await self.handler.admit(update)
            except StoreError as err:
                logger.warning(
                    "bot %s: cannot store an update (%s); Telegram will resend it", self.name, err
                )
                return PlainTextResponse("cannot store the update now", 503)
        if admitted:
            queue = self.application.update_queue
            assert isinstance(queue, _InboxQueue)
            await queue.put_admitted(update)
        return Response(status_code=200)

    async def _on_error(self, update: object, context: Any) -> None:
        logger.error("bot %s: %s", self.name, context.error, exc_info=context.error)

    async def aclose(self) -> None:
        """Stop taking updates, let the replies under way finish (a bounded wait), disconnect."""
        self._closing = True
        app = self.application
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            stopping = asyncio.create_task(app.stop())
            done, _ = await asyncio.wait({stopping}, timeout=self._timing.shutdown_timeout)
            if not done:
                logger.warning(
                    "bot %s: %d replies still under way after %.0f s; cancelling them",
                    self.name,
                    self.handler.in_flight,
                    self._timing.shutdown_timeout,
                )
                self.handler.cancel()
            await stopping
        await self.buttons.aclose()
        await app.shutdown()
        await app.bot.shutdown()  # its HTTP clients, even when it never finished starting


class _InboxQueue(asyncio.Queue[object]):
    """python-telegram-bot's update queue, storing each update in the inbox as it is put.

    The updater confirms an update's offset only after `put` returns, and the
    webhook answers 200 only after it, so an update is never lost between Telegram
    and the store. (python-telegram-bot offers no hook after a durable write: this
    queue is that hook.) While the store is down, `put` waits, so nothing is
    confirmed and Telegram keeps the updates. Updates botkit does not answer are
    dropped here: this Application has no other handler.
    """

    def __init__(self, handler: TelegramHandler) -> None:
        super().__init__()
        self._handler = handler

    async def put(self, item: object) -> None:
        if isinstance(item, Update):
            delay = 1.0
            while True:
                try:
                    if not await self._handler.admit(item):
                        return
                    break
                except StoreError as err:
                    logger.warning(
                        "bot %s: cannot store an update (%s); retrying in %.0f s",
                        self._handler.name,
                        err,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
        await super().put(item)

    async def put_admitted(self, update: Update) -> None:
        """Queue an update already in the inbox (the webhook stores it first itself)."""
        await super().put(update)
