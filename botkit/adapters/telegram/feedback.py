"""Feedback on Telegram: 👍 and 👎 under each answer (an inline keyboard), and the clicks.

A click is a `callback_query` update. Its vote is stored before Telegram is told the
update arrived (like a message in the inbox); then the click is answered, so the
button stops spinning (also for an answer that no longer exists), and the keyboard
shows the vote. A 👎 may bring a "Talk to a person" button, whose click is the
customer's `/human`.

    callback data   "fb:1:<message id>", "fb:-1:<message id>", "fb:human:<message id>"
                    (the id of the customer's message the answer replies to)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ExtBot

from botkit.adapters.telegram.incoming import CHANNEL
from botkit.feedback import BUTTONS, OFFER, Votes
from botkit.messages import IncomingMessage, Reply

logger = logging.getLogger(__name__)

PREFIX = "fb"
HUMAN = "human"
NOT_YOURS = "Only the person who asked can rate this answer."
CHOSEN = " ✓"
"""Marks the vote given on its button."""


def keyboard(
    message_id: str, *, chosen: int | None = None, offer: bool = False
) -> InlineKeyboardMarkup:
    """The buttons under the answer to `message_id`: the vote `chosen` marked, and the
    offer of a person under them."""
    votes = [
        InlineKeyboardButton(
            label + (CHOSEN if score == chosen else ""),
            callback_data=f"{PREFIX}:{score}:{message_id}",
        )
        for score, label in BUTTONS.items()
    ]
    rows = [votes]
    if offer:
        rows.append(
            [InlineKeyboardButton(f"🙋 {OFFER}", callback_data=f"{PREFIX}:{HUMAN}:{message_id}")]
        )
    return InlineKeyboardMarkup(rows)


def is_click(data: object) -> bool:
    """Whether a callback query's data is one of botkit's feedback buttons."""
    return isinstance(data, str) and parse(data) is not None


def parse(data: str | None) -> tuple[str, str] | None:
    """The action ("1", "-1" or "human") and message id of a button's callback data."""
    prefix, _, rest = (data or "").partition(":")
    action, _, message_id = rest.partition(":")
    if prefix != PREFIX or action not in ("1", "-1", HUMAN) or not message_id:
        return None
    return action, message_id


class FeedbackButtons:
    """One bot's feedback buttons: under its answers, and their clicks."""

    def __init__(
        self, *, bot: str, votes: Votes, telegram: ExtBot[Any], shutdown_timeout: float = 10.0
    ) -> None:
        self._bot = bot
        self._shutdown_timeout = shutdown_timeout
        self._votes = votes
        self._telegram = telegram
        self._tasks: set[asyncio.Task[None]] = set()

    def for_reply(
        self, incoming: IncomingMessage, reply: Reply | None
    ) -> InlineKeyboardMarkup | None:
        """The buttons under a reply: for the bot's answers, when the bot takes votes."""
        if reply is None or reply.kind != "answer" or not self._votes.takes_votes(self._bot):
            return None
        message_id = reply.in_reply_to or incoming.message_id
        return keyboard(message_id) if message_id else None

    async def on_click(self, query: CallbackQuery) -> IncomingMessage | None:
        """Store a click's vote (raises `StoreError`, so Telegram sends it again) and answer
        it in the background; for "Talk to a person", the `/human` message to answer."""
        parsed = parse(query.data)
        message = query.message
        if parsed is None or not isinstance(message, Message):
            self._spawn(self._answer(query, None))
            return None
        action, message_id = parsed
        user = query.from_user
        private = message.chat.type == ChatType.PRIVATE
        conversation_id = str(message.chat.id) if private else f"{message.chat.id}:{user.id}"
        if action == HUMAN:
            self._spawn(self._answer(query, None))
            return IncomingMessage(
                channel=CHANNEL,
                bot=self._bot,
                conversation_id=conversation_id,
                user_id=str(user.id),
                text="/human",
                user_name=user.full_name,
                user_language=user.language_code,
                message_id=f"cb{query.id}",
            )
        asked = message.reply_to_message  # in groups the answer quotes the question
        if not private and asked is not None and asked.from_user and asked.from_user.id != user.id:
            self._spawn(self._answer(query, NOT_YOURS))
            return None
        score = int(action)
        result = await self._votes.cast(
            bot=self._bot,
            channel=CHANNEL,
            conversation_id=conversation_id,
            message_id=message_id,
            user=str(user.id),
            score=score,
        )
        self._spawn(self._answer(query, result.note))
        if result.status == "recorded":
            marked = keyboard(message_id, chosen=score, offer=result.offer_person)
            self._spawn(self._mark(message, marked))
        return None

    async def _answer(self, query: CallbackQuery, text: str | None) -> None:
        try:
            await self._telegram.answer_callback_query(query.id, text=text)
        except TelegramError as err:  # too old (over 15 minutes), or answered already
            logger.info("bot %s: could not answer a button click: %s", self._bot, err)

    async def _mark(self, message: Message, markup: InlineKeyboardMarkup) -> None:
        try:
            await self._telegram.edit_message_reply_markup(
                chat_id=message.chat.id, message_id=message.message_id, reply_markup=markup
            )
        except TelegramError as err:  # "not modified": the same vote again
            logger.debug("bot %s: could not show a vote: %s", self._bot, err)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Let the answers to clicks under way finish (a bounded wait)."""
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=self._shutdown_timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
