"""Posting one reply into one Telegram chat: whole, or streamed by editing a message.

Telegram's flood control is python-telegram-bot's `AIORateLimiter`: it spaces
requests out and retries a request refused with `RetryAfter` once the wait is
over. What is left to this module is never losing the text: HTML that Telegram
cannot parse is re-sent as plain text, "message is not modified" is not an
error, and the final text is tried again through network errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from telegram import InlineKeyboardMarkup, Message, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError
from telegram.ext import ExtBot

from botkit.adapters.telegram.format import Piece, to_pieces

logger = logging.getLogger(__name__)

FINAL_ATTEMPTS = 4
"""Tries for the final text through network errors (each RetryAfter is retried by the limiter)."""
FINAL_RATE_LIMIT_RETRIES = 10
"""How many `RetryAfter` waits the final text may sit out; a partial edit gets the default."""

T = TypeVar("T")
Bot = ExtBot[Any]


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a reply goes: a chat, the message it quotes (in groups) and the forum topic."""

    chat_id: int
    quote: int | None = None
    thread_id: int | None = None


@dataclass(slots=True)
class _Shown:
    message_id: int
    piece: Piece
    buttons: InlineKeyboardMarkup | None = None


Buttons = Callable[[], InlineKeyboardMarkup | None]
"""What goes under the whole answer (feedback buttons), asked when it is complete."""


class ReplyWriter:
    """Shows a reply's text in a chat: the first message quotes the user's, later text edits
    it, and text that outgrows one message continues in further ones."""

    def __init__(
        self,
        bot: Bot,
        destination: Destination,
        *,
        before_first: Callable[[], Awaitable[None]],
        buttons: Buttons | None = None,
    ) -> None:
        self._bot = bot
        self._destination = destination
        self._before_first = before_first
        self._buttons = buttons
        self._shown: list[_Shown] = []

    async def show(self, markdown: str, *, final: bool = True) -> None:
        """Make the chat show `markdown`; a partial text that cannot be shown now is skipped,
        the final one is retried and its failure raised. The final text's last message
        carries the buttons, if any (in the edit or send that shows it)."""
        pieces = to_pieces(markdown)
        buttons = self._buttons() if final and self._buttons is not None else None
        for index, piece in enumerate(pieces):
            markup = buttons if index == len(pieces) - 1 else None
            if index < len(self._shown):
                shown = self._shown[index]
                if shown.piece != piece:
                    await self._attempt(partial(self._edit, index, piece, final, markup), final)
                elif markup is not None and shown.buttons != markup:
                    await self._attempt(partial(self._mark, index, markup), final)
            elif not await self._attempt(partial(self._send, piece, final, markup), final):
                return  # later pieces must not overtake this one

    async def _attempt(self, action: Callable[[], Awaitable[None]], final: bool) -> bool:
        """Run a send or an edit. A partial update that fails is skipped (the next one shows
        the same text and more); the final one is tried again through network errors."""
        chat = self._destination.chat_id
        for attempt in range(1, FINAL_ATTEMPTS + 1):
            try:
                await action()
                return True
            except (NetworkError, RetryAfter) as err:
                if not final:
                    logger.debug("skipped a partial update of chat %s: %s", chat, err)
                    return False
                # BadRequest is a NetworkError to python-telegram-bot, but trying again cannot
                # help; a RetryAfter gets here only once the rate limiter used up its retries.
                if isinstance(err, BadRequest | RetryAfter) or attempt == FINAL_ATTEMPTS:
                    raise
                logger.warning("chat %s: %s; trying again", chat, err)
                await asyncio.sleep(0.5 * 2**attempt)
        return False

    async def _send(self, piece: Piece, final: bool, markup: InlineKeyboardMarkup | None) -> None:
        if not self._shown:
            await self._before_first()
        quote = self._destination.quote if not self._shown else None

        async def send(text: str, parse_mode: str | None) -> Message:
            return await self._bot.send_message(
                chat_id=self._destination.chat_id,
                text=text,
                parse_mode=parse_mode,
                message_thread_id=self._destination.thread_id,
                reply_parameters=(
                    ReplyParameters(quote, allow_sending_without_reply=True) if quote else None
                ),
                reply_markup=markup,
                rate_limit_args=FINAL_RATE_LIMIT_RETRIES if final else None,
            )

        message = await _formatted_or_plain(send, piece)
        self._shown.append(_Shown(message.message_id, piece, markup))

    async def _edit(
        self, index: int, piece: Piece, final: bool, markup: InlineKeyboardMarkup | None
    ) -> None:
        shown = self._shown[index]

        async def edit(text: str, parse_mode: str | None) -> None:
            try:
                await self._bot.edit_message_text(
                    text=text,
                    chat_id=self._destination.chat_id,
                    message_id=shown.message_id,
                    parse_mode=parse_mode,
                    reply_markup=markup,
                    rate_limit_args=FINAL_RATE_LIMIT_RETRIES if final else None,
                )
            except BadRequest as err:
                if "not modified" not in err.message.lower():
                    raise

        await _formatted_or_plain(edit, piece)
        shown.piece = piece
        shown.buttons = markup

    async def _mark(self, index: int, markup: InlineKeyboardMarkup) -> None:
        """Put the buttons under a message whose text is already whole."""
        shown = self._shown[index]
        try:
            await self._bot.edit_message_reply_markup(
                chat_id=self._destination.chat_id,
                message_id=shown.message_id,
                reply_markup=markup,
                rate_limit_args=FINAL_RATE_LIMIT_RETRIES,
            )
        except BadRequest as err:
            if "not modified" not in err.message.lower():
                raise
        shown.buttons = markup


async def _formatted_or_plain(post: Callable[[str, str | None], Awaitable[T]], piece: Piece) -> T:
    """Post the piece as HTML; when Telegram cannot parse it, the same text unformatted."""
    try:
        return await post(piece.html, ParseMode.HTML)
    except BadRequest as err:
        if "can't parse entities" not in err.message.lower():
            raise
        logger.warning("Telegram refused the formatting (%s); sending plain text", err.message)
        return await post(piece.text, None)


@contextlib.asynccontextmanager
async def typing(
    bot: Bot, destination: Destination, interval: float
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Show "typing…" every `interval` seconds until the yielded `stop` is awaited or the
    block ends (Telegram shows it for about five seconds each time)."""

    async def keep_typing() -> None:
        while True:
            try:
                await bot.send_chat_action(
                    destination.chat_id,
                    ChatAction.TYPING,
                    message_thread_id=destination.thread_id,
                )
            except TelegramError as err:
                logger.debug("typing indicator for chat %s: %s", destination.chat_id, err)
            await asyncio.sleep(interval)

    task = asyncio.create_task(keep_typing())

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        yield stop
    finally:
        await stop()
