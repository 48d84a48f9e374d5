"""One botkit bot on Telegram: its python-telegram-bot `Application`, fed by long polling
or by the webhook route, and how it answers an update.

Every update is checked first (`updates.py`): one whose fields botkit cannot read
is logged in one line and confirmed, since refusing it would only bring it back.
Every update for the bot goes into the store's inbox before Telegram is told it
arrived: polling confirms an update's offset only once its `put` on the update
queue returns, and the webhook answers 200 only then, so a worker that dies
leaves its updates to another. Updates are handled concurrently, one
conversation at a time, so a chat whose replies are slow, failing or waiting on
flood control holds up no other chat.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from telegram import BotCommand, Message, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, TelegramError
from telegram.ext import AIORateLimiter, Application, ContextTypes, TypeHandler

from botkit.adapters.streaming import stream_reply
from botkit.adapters.telegram.incoming import BotIdentity, to_incoming
from botkit.adapters.telegram.reply import Destination, ReplyWriter, typing
from botkit.adapters.telegram.updates import CheckedUpdates, log_unreadable, read_update
from botkit.errors import ConfigError, DeliveryError, PayloadError, Problem, StoreError
from botkit.inbox import settle
from botkit.locks import ConversationLocks
from botkit.messages import IncomingMessage
from botkit.stores.base import InboxItem

if TYPE_CHECKING:
    from botkit.pipeline import Pipeline
    from botkit.stores import Store

logger = logging.getLogger(__name__)

COMMANDS = {
    "start": "Start the conversation",
    "help": "What I can help with",
    "reset": "Forget our conversation and start fresh",
}
HANDOFF_COMMAND = {"human": "Talk to a person"}
ALLOWED_UPDATES = ["message"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPDATE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """The channel's intervals, in seconds; tests shorten them."""

    edit_interval: float = 1.0
    group_edit_interval: float = 3.0  # a group may take 20 messages a minute
    typing_interval: float = 4.0
    poll_timeout: float = 30.0
    shutdown_timeout: float = 10.0


class TelegramBot:
    """One botkit bot on Telegram: its python-telegram-bot `Application` and how it answers."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        store: Store,
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
        self._store = store
        self._secret = secret
        self._timing = timing
        builder = (
            Application.builder()
            .token(token)
            .base_url(f"{base_url}/bot")
            .base_file_url(f"{base_url}/file/bot")
            .rate_limiter(AIORateLimiter(max_retries=max_retries))
            .concurrent_updates(True)
        )
        builder = builder.update_queue(_InboxQueue(self)).get_updates_request(
            CheckedUpdates(self.name)
        )
        self.application = (builder.updater(None) if webhook_url else builder).build()
        self.application.add_handler(TypeHandler(Update, self._on_update))
        self.application.add_error_handler(self._on_error)
        self._me: BotIdentity | None = None
        self._locks = ConversationLocks()
        self._items: dict[int, tuple[IncomingMessage, InboxItem]] = {}
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._cancelling = False

    def route(self) -> Route:
        assert self.webhook_url is not None
        return Route(urlsplit(self.webhook_url).path, self._webhook, methods=["POST"])

    async def run(self) -> None:
        """Connect, then take updates until cancelled."""
        app = self.application
        await self._initialize()
        self._me = BotIdentity(app.bot.id, app.bot.username)
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
        logger.info("bot %s is on Telegram as @%s (%s)", self.name, self._me.username, how)
        await asyncio.get_running_loop().create_future()

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
        try:
            admitted = await self._admit(update)
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

    async def _admit(self, update: Update) -> bool:
        """Keep an update the bot answers in the inbox; False for one it ignores or has seen
        (Telegram delivering it again). Raises `StoreError`."""
        if self._me is None:
            return False
        incoming = to_incoming(update, bot=self.name, me=self._me)
        message = update.message
        if incoming is None or message is None:
            return False
        item = await self._pipeline.accept(
            incoming,
            address=_address(self.name, message),
            dedupe=f"telegram/{self.name}/update/{update.update_id}",
        )
        if item is None:
            return False
        self._items[update.update_id] = (incoming, item)
        return True

    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        accepted = self._items.pop(update.update_id, None)
        if accepted is None or self._cancelling:
            return
        incoming, item = accepted
        await self._carry_out(incoming, item)

    async def _carry_out(self, incoming: IncomingMessage, item: InboxItem) -> None:
        """Answer an accepted message, then let the inbox forget it (or try it later)."""
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            # Held before anything is awaited, so a conversation's messages keep their order.
            async with self._locks.hold(incoming.conversation_key):
                await settle(self._store, item, self._answer(incoming, item))
        finally:
            self._in_flight.discard(task)

    async def resume(self, item: InboxItem) -> None:
        """A message a dead worker accepted, or a person's message for the customer."""
        address = item.payload["address"]
        if item.payload["kind"] == "message":
            incoming = IncomingMessage.from_json(item.payload["message"])
            async with self._locks.hold(incoming.conversation_key):
                await self._answer(incoming, item)
            return
        text = item.payload["text"]
        if agent := item.payload.get("agent"):
            text = f"**{agent}:** {text}"
        writer = ReplyWriter(
            self.application.bot, _destination(address, quote=False), before_first=_nothing
        )
        try:
            await writer.show(text)
        except Forbidden as err:
            raise DeliveryError(f"Telegram refused: {err.message}") from err
        except BadRequest as err:
            if "chat not found" in err.message.lower():
                raise DeliveryError(f"Telegram refused: {err.message}") from err
            raise

    async def _answer(self, incoming: IncomingMessage, item: InboxItem) -> None:
        address = item.payload["address"]
        destination = _destination(address, quote=True)
        bot = self.application.bot
        if not incoming.text:
            writer = ReplyWriter(bot, destination, before_first=_nothing)
            await writer.show(self._pipeline.composer.render("unsupported", incoming))
            return
        streaming = self._pipeline.bot.settings.streaming
        stream = self._pipeline.stream(incoming, item=item, incremental=streaming)
        if not await stream.begin():  # relayed to a person: nothing to show
            async for _ in stream:
                pass
            return
        async with typing(bot, destination, self._timing.typing_interval) as stop_typing:
            writer = ReplyWriter(bot, destination, before_first=stop_typing)
            timing = self._timing
            interval = timing.edit_interval if address["private"] else timing.group_edit_interval
            await stream_reply(writer, stream, interval if streaming else 0.0)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
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
                    len(self._in_flight),
                    self._timing.shutdown_timeout,
                )
                self._cancelling = True
                for task in list(self._in_flight):
                    task.cancel()
            await stopping
        await app.shutdown()
        await app.bot.shutdown()  # its HTTP clients, even when it never finished starting


async def _nothing() -> None:
    pass


def _address(bot: str, message: Message) -> dict[str, Any]:
    """Where the answer to `message` goes, as the inbox keeps it for any worker."""
    private = message.chat.type == ChatType.PRIVATE
    return {
        "bot": bot,
        "chat_id": message.chat_id,
        "message_id": message.message_id,
        "thread_id": message.message_thread_id if message.is_topic_message else None,
        "private": private,
    }


def _destination(address: dict[str, Any], *, quote: bool) -> Destination:
    """An answer quotes the question in groups; a person's message quotes nothing."""
    return Destination(
        chat_id=address["chat_id"],
        quote=address["message_id"] if quote and not address["private"] else None,
        thread_id=address["thread_id"],
    )


class _InboxQueue(asyncio.Queue[object]):
    """python-telegram-bot's update queue, storing each update in the inbox as it is put.

    The updater confirms an update's offset only after `put` returns, and the
    webhook answers 200 only after it, so an update is never lost between Telegram
    and the store. (python-telegram-bot offers no hook after a durable write: this
    queue is that hook.) While the store is down, `put` waits, so nothing is
    confirmed and Telegram keeps the updates.
    """

    def __init__(self, bot: TelegramBot) -> None:
        super().__init__()
        self._bot = bot

    async def put(self, item: object) -> None:
        if isinstance(item, Update):
            delay = 1.0
            while True:
                try:
                    if not await self._bot._admit(item):
                        return
                    break
                except StoreError as err:
                    logger.warning(
                        "bot %s: cannot store an update (%s); retrying in %.0f s",
                        self._bot.name,
                        err,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
        await super().put(item)

    async def put_admitted(self, update: Update) -> None:
        """Queue an update already in the inbox (the webhook stores it first itself)."""
        await super().put(update)
