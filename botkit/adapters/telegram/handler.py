"""botkit's answers as a python-telegram-bot handler, for any `Application`: add it after your
own handlers, commands and conversations (`botkit.telegram.handler`). The Telegram channel
of `botkit serve` is this handler on an Application of its own.

    update → check_update (to_incoming: private chats, group rules)
    → the inbox (kept until the answer is posted) → one conversation at a time
    → pipeline.stream → DraftWriter (private chats) or ReplyWriter (edits)

Updates are answered concurrently, one conversation at a time, so a chat whose
replies are slow, failing or waiting on flood control holds up no other chat.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from telegram import CallbackQuery, Message, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden
from telegram.ext import BaseHandler

from botkit.adapters.streaming import stream_reply
from botkit.adapters.telegram.feedback import is_click
from botkit.adapters.telegram.incoming import BotIdentity, to_incoming
from botkit.adapters.telegram.reply import (
    Bot,
    Destination,
    DraftSupport,
    DraftWriter,
    ReplyWriter,
    ShowsText,
    typing,
)
from botkit.errors import DeliveryError
from botkit.inbox import settle
from botkit.locks import ConversationLocks
from botkit.messages import IncomingMessage
from botkit.stores.base import InboxItem

if TYPE_CHECKING:
    from telegram.ext import Application

    from botkit.adapters.telegram.feedback import FeedbackButtons
    from botkit.pipeline import Pipeline

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """The intervals of answering on Telegram, in seconds; tests shorten them."""

    edit_interval: float = 1.0
    """Between two updates of an answer being written (an edit, or a draft)."""
    group_edit_interval: float = 3.0  # a group may take 20 messages a minute
    typing_interval: float = 4.0
    poll_timeout: float = 30.0
    """The channel's long poll (unused by a handler on your own Application)."""
    shutdown_timeout: float = 10.0
    """How long the channel lets answers under way finish when it stops."""


@dataclass(frozen=True, slots=True)
class _Accepted:
    """An update's message, already in the inbox."""

    incoming: IncomingMessage
    item: InboxItem


class TelegramHandler(BaseHandler[Update, Any, None]):
    """Answers the messages a botkit bot should answer, with its pipeline.

    In private chats that is every message (content it cannot read gets the
    bot's `unsupported` text); in groups, the messages that mention the bot,
    reply to it, or are its commands. With `buttons`, its answers carry 👍/👎 and
    it takes their clicks (callback data starting "fb:"). Other updates (other
    callback queries, edits, your commands when your handler comes first) are left
    to other handlers.

    Each message goes into the store's inbox before it is answered, and leaves it
    once the answer is posted; a failed answer is tried again. With `inbox_first`
    (the channel), an update queue already put it there before Telegram was told
    the update arrived (`admit`), and only updates so admitted are answered.

    `block=False` (the default) answers in a task of the Application's, so a slow
    answer never holds up your other handlers; `Application.stop()` waits for it.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        timing: Timing | None = None,
        block: bool = False,
        inbox_first: bool = False,
        buttons: FeedbackButtons | None = None,
    ) -> None:
        super().__init__(_never_called, block=block)
        self.pipeline = pipeline
        self.timing = timing or Timing()
        self.buttons = buttons
        self.bot: Bot | None = None
        """The bot answers go out with: the Application's, known from its first update (or
        set beforehand, for `resume`)."""
        self._me: BotIdentity | None = None
        self._admitted: dict[int, _Accepted] | None = {} if inbox_first else None
        self._drafts = DraftSupport()
        self._locks = ConversationLocks()
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._cancelled = False

    @property
    def name(self) -> str:
        return self.pipeline.bot.name

    # --- which updates are botkit's -----------------------------------------------------

    def check_update(self, update: object) -> object | None:
        if not isinstance(update, Update) or self._cancelled:
            return None
        if self._admitted is not None:
            return self._admitted.get(update.update_id)
        if update.callback_query is not None:
            query = update.callback_query
            return query if self.buttons is not None and is_click(query.data) else None
        return self.to_incoming(update) if update.message is not None else None

    def to_incoming(self, update: Update) -> IncomingMessage | None:
        """The message botkit answers in `update`, or None (see `to_incoming`)."""
        if self._me is None:
            bot = update.get_bot()
            self._me = BotIdentity(bot.id, bot.username)
        return to_incoming(update, bot=self.name, me=self._me)

    async def admit(self, update: Update) -> bool:
        """Put an update botkit answers in the inbox (for an update queue that does so before
        Telegram is told it arrived); False for one it ignores or has seen before (Telegram
        delivering it again). A feedback click's vote is stored here; its "Talk to a
        person" is the message it admits. Raises `StoreError`."""
        if self._admitted is None:
            return False
        incoming, message = (
            await self._click(update)
            if update.callback_query
            else (
                self.to_incoming(update),
                update.message,
            )
        )
        if incoming is None or message is None:
            return False
        item = await self.pipeline.accept(
            incoming, address=_address(self.name, message), dedupe=self._dedupe(update)
        )
        if item is None:
            return False
        self._admitted[update.update_id] = _Accepted(incoming, item)
        return True

    def _dedupe(self, update: Update) -> str:
        return f"telegram/{self.name}/update/{update.update_id}"

    async def _click(self, update: Update) -> tuple[IncomingMessage | None, Message | None]:
        """A feedback button's click: its vote stored (raises `StoreError`); for "Talk to a
        person", the `/human` message to answer in the chat the answer is in."""
        query = update.callback_query
        if query is None or self.buttons is None:
            return None, None
        if self._me is None:
            bot = update.get_bot()
            self._me = BotIdentity(bot.id, bot.username)
        incoming = await self.buttons.on_click(query)
        message = query.message if isinstance(query.message, Message) else None
        return incoming, message

    # --- answering ----------------------------------------------------------------------

    async def handle_update(
        self,
        update: Update,
        application: Application[Any, Any, Any, Any, Any, Any],
        check_result: object,
        context: Any,
    ) -> None:
        if self.bot is None:
            self.bot = application.bot
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            if isinstance(check_result, _Accepted):
                assert self._admitted is not None
                self._admitted.pop(update.update_id, None)
                await self._carry_out(check_result.incoming, check_result.item)
            elif isinstance(check_result, IncomingMessage) and update.message is not None:
                await self._carry_out(check_result, None, update.message, self._dedupe(update))
            elif isinstance(check_result, CallbackQuery):
                incoming, message = await self._click(update)
                if incoming is not None and message is not None:
                    await self._carry_out(incoming, None, message, self._dedupe(update))
        finally:
            self._in_flight.discard(task)

    async def _carry_out(
        self,
        incoming: IncomingMessage,
        item: InboxItem | None,
        message: Message | None = None,
        dedupe: str | None = None,
    ) -> None:
        """Answer a message, then let the inbox forget it (or try it later)."""
        # Held before anything is awaited, so a conversation's messages keep their order.
        async with self._locks.hold(incoming.conversation_key):
            if item is None:  # taken by this handler (PTB chose it), so kept only now
                assert message is not None
                address = _address(self.name, message)
                item = await self.pipeline.accept(incoming, address=address, dedupe=dedupe)
                if item is None:
                    return
            await settle(self.pipeline.store, item, self._answer(incoming, item))

    async def resume(self, item: InboxItem) -> None:
        """A message a dead worker accepted, or a person's message for the customer."""
        bot = self._bot()
        address = item.payload["address"]
        if item.payload["kind"] == "message":
            incoming = IncomingMessage.from_json(item.payload["message"])
            async with self._locks.hold(incoming.conversation_key):
                await self._answer(incoming, item)
            return
        text = item.payload["text"]
        if agent := item.payload.get("agent"):
            text = f"**{agent}:** {text}"
        writer = ReplyWriter(bot, _destination(address, quote=False), before_first=_nothing)
        try:
            await writer.show(text)
        except Forbidden as err:
            raise DeliveryError(f"Telegram refused: {err.message}") from err
        except BadRequest as err:
            if "chat not found" in err.message.lower():
                raise DeliveryError(f"Telegram refused: {err.message}") from err
            raise

    async def _answer(self, incoming: IncomingMessage, item: InboxItem) -> None:
        bot = self._bot()
        address = item.payload["address"]
        destination = _destination(address, quote=True)
        pipeline = self.pipeline
        if not incoming.text:
            writer = ReplyWriter(bot, destination, before_first=_nothing)
            await writer.show(pipeline.composer.render("unsupported", incoming))
            return
        streaming = pipeline.bot.settings.streaming
        stream = pipeline.stream(incoming, item=item, incremental=streaming)
        if not await stream.begin():  # relayed to a person: nothing to show
            async for _ in stream:
                pass
            return
        timing = self.timing
        buttons = self.buttons
        async with typing(bot, destination, timing.typing_interval) as stop_typing:
            writer = ReplyWriter(
                bot,
                destination,
                before_first=stop_typing,
                buttons=(lambda: buttons.for_reply(incoming, stream.reply)) if buttons else None,
            )
            shown: ShowsText = writer
            if streaming and address["private"]:
                shown = DraftWriter(
                    bot, destination, writer, self._drafts, before_first=stop_typing
                )
            interval = timing.edit_interval if address["private"] else timing.group_edit_interval
            await stream_reply(shown, stream, interval if streaming else None)

    def _bot(self) -> Bot:
        if self.bot is None:
            raise RuntimeError(
                f"bot {self.name!r}: the handler has seen no update yet; set handler.bot"
            )
        return self.bot

    # --- stopping -----------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """How many answers are under way."""
        return len(self._in_flight)

    def cancel(self) -> None:
        """Take no more updates, and cancel the answers under way (their inbox items come
        back to a worker once their lease runs out)."""
        self._cancelled = True
        for task in list(self._in_flight):
            task.cancel()


async def _never_called(update: Update, context: Any) -> None:
    raise AssertionError("TelegramHandler answers in handle_update")


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
