"""Posting one reply into one Telegram chat: whole, or streamed by editing a message, or
in a private chat as a message draft that Telegram animates (`sendMessageDraft`, Bot API
9.3, python-telegram-bot 22.6), sent as a message once complete.

Telegram's flood control is python-telegram-bot's `AIORateLimiter` when the bot has
one (the channel's always does): it spaces requests out and retries a request refused
with `RetryAfter` once the wait is over; without one, the final text waits here.
What is left to this module is never losing the text: HTML that Telegram cannot parse
is re-sent as plain text, "message is not modified" is not an error, and the final
text is tried again through network errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from telegram import InlineKeyboardMarkup, Message, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import (
    BadRequest,
    EndPointNotFound,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import ExtBot

from botkit.adapters.streaming import ShowsText
from botkit.adapters.telegram.format import Piece, to_pieces

logger = logging.getLogger(__name__)

FINAL_ATTEMPTS = 4
"""Tries for the final text through network errors (each RetryAfter is retried by the limiter)."""
FINAL_RATE_LIMIT_RETRIES = 10
"""How many `RetryAfter` waits the final text may sit out; a partial edit gets the default."""

T = TypeVar("T")
Bot = ExtBot[Any]

__all__ = ["Destination", "DraftSupport", "DraftWriter", "ReplyWriter", "ShowsText", "typing"]


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
        # An Application of your own may have no rate limiter (python-telegram-bot refuses
        # rate_limit_args then).
        self._limited = bot.rate_limiter is not None
        self._flood_until = 0.0

    def _rate_limit_args(self, final: bool) -> int | None:
        return FINAL_RATE_LIMIT_RETRIES if final and self._limited else None

    async def show(self, markdown: str, *, final: bool = True) -> None:
        """Make the chat show `markdown`; a partial text that cannot be shown now is skipped,
        the final one is retried and its failure raised. The final text's last message
        carries the buttons, if any (in the edit or send that shows it)."""
        await self.show_pieces(to_pieces(markdown), final=final)

    async def show_pieces(self, pieces: list[Piece], *, final: bool = True) -> None:
        """Make the chat show these pieces, one message each (see `show`)."""
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
        loop = asyncio.get_running_loop()
        for attempt in range(1, FINAL_ATTEMPTS + 1):
            if (wait := self._flood_until - loop.time()) > 0:  # only without a rate limiter
                if not final:
                    return False
                await asyncio.sleep(wait)
            try:
                await action()
                return True
            except (NetworkError, RetryAfter) as err:
                if isinstance(err, RetryAfter) and not self._limited:
                    # Telegram's wait, kept here as the rate limiter would keep it.
                    self._flood_until = loop.time() + _seconds(err.retry_after)
                    logger.warning("chat %s: %s", chat, err)
                    if final and attempt < FINAL_ATTEMPTS:
                        continue
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
                rate_limit_args=self._rate_limit_args(final),
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
                    rate_limit_args=self._rate_limit_args(final),
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
                rate_limit_args=self._rate_limit_args(True),
            )
        except BadRequest as err:
            if "not modified" not in err.message.lower():
                raise
        shown.buttons = markup


class DraftSupport:
    """Whether a bot's drafts are worth trying: python-telegram-bot must have
    `send_message_draft` (22.6), and the Bot API server must not have refused it."""

    def __init__(self) -> None:
        self.available = hasattr(ExtBot, "send_message_draft")

    def refused(self, reason: str, *, missing: bool = False) -> None:
        """Try no more drafts; `missing`: the Bot API server has no such method (nothing for
        an operator to fix, so not a warning)."""
        if self.available:
            logger.log(
                logging.INFO if missing else logging.WARNING,
                "Telegram refused a message draft (%s); streaming by editing messages instead",
                reason,
            )
        self.available = False


class DraftWriter:
    """Streams an answer into a private chat as a message draft, which Telegram animates as
    it grows (no edits, no "edited" mark), and sends it as messages when it is complete.

    Text that outgrows one message is sent as it completes, the rest drafted. When
    Telegram refuses drafts, the answer continues as `writer`'s edited messages.
    """

    def __init__(
        self,
        bot: Bot,
        destination: Destination,
        writer: ReplyWriter,
        support: DraftSupport,
        *,
        before_first: Callable[[], Awaitable[None]],
    ) -> None:
        self._bot = bot
        self._destination = destination
        self._writer = writer
        self._support = support
        self._before_first = before_first
        # Changes of one draft id are animated; each message of a long answer gets its own.
        self._draft_id = secrets.randbelow(2**30) + 1
        self._drafting = True

    async def show(self, markdown: str, *, final: bool = True) -> None:
        if final or not (self._drafting and self._support.available):
            await self._writer.show(markdown, final=final)  # the final text: real messages
            return
        pieces = to_pieces(markdown)
        if len(pieces) > 1:
            await self._writer.show_pieces(pieces[:-1], final=False)
        try:
            await self._draft(len(pieces) - 1, pieces[-1])
        except (InvalidToken, EndPointNotFound) as err:  # 404: the server has no such method
            self._support.refused(str(err), missing=True)
        except BadRequest as err:  # e.g. drafts not allowed for this bot
            self._support.refused(err.message)
        except (NetworkError, RetryAfter) as err:
            logger.debug("skipped a draft in chat %s: %s", self._destination.chat_id, err)
            return
        else:
            return
        self._drafting = False
        await self._writer.show(markdown, final=False)

    async def _draft(self, index: int, piece: Piece) -> None:
        await self._before_first()

        async def draft(text: str, parse_mode: str | None) -> bool:
            return await self._bot.send_message_draft(
                chat_id=self._destination.chat_id,
                draft_id=self._draft_id + index,
                text=text,
                parse_mode=parse_mode,
                message_thread_id=self._destination.thread_id,
            )

        await _formatted_or_plain(draft, piece)


def _seconds(wait: float | timedelta) -> float:
    """`RetryAfter.retry_after`: seconds, or a timedelta (PTB_TIMEDELTA, python-telegram-bot 23)."""
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)


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
