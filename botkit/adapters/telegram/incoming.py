"""Telegram updates as the framework's incoming messages, and the group rules.

In a private chat every message is for the bot, one conversation per chat. In a
group only messages that mention the bot, reply to it or are its commands are,
and each member has their own conversation with it. Nothing Telegram-specific
passes further inward than `to_incoming`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import Message, MessageEntity, Update
from telegram.constants import ChatType

from botkit.messages import IncomingMessage
from botkit.pipeline import parse_command

CHANNEL = "telegram"
_UNREADABLE = (
    "photo", "sticker", "voice", "document", "video", "audio", "animation", "video_note",
    "contact", "location", "venue", "poll", "dice", "story",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is on Telegram (from getMe), to tell when a group addresses it."""

    id: int
    username: str


def to_incoming(update: Update, *, bot: str, me: BotIdentity) -> IncomingMessage | None:
    """The message an update carries, or None when the bot should not answer it.

    Edited messages, channel posts, service messages, messages from bots and
    group messages not addressed to the bot are None. Content the bot cannot read
    (photos, stickers, voice, documents…) gives a message with empty `text`.
    """
    message = update.message
    if message is None or message.from_user is None or message.from_user.is_bot:
        return None
    if message.text is None and not any(getattr(message, kind) for kind in _UNREADABLE):
        return None
    private = message.chat.type == ChatType.PRIVATE
    if not private and not is_addressed(message, me):
        return None
    user = message.from_user
    return IncomingMessage(
        channel=CHANNEL,
        bot=bot,
        conversation_id=str(message.chat.id) if private else f"{message.chat.id}:{user.id}",
        user_id=str(user.id),
        text=_without_mention(message.text, me) if message.text else "",
        user_name=user.full_name,
        user_language=user.language_code,
        message_id=str(message.message_id),
        timestamp=message.date,
    )


def is_addressed(message: Message, me: BotIdentity) -> bool:
    """Whether a group message is for the bot: it mentions it, replies to it, or is a command
    for it (`/help@ThisBot`, or `/help` when it is one of the bot's commands)."""
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == me.id:
        return True
    entities = message.parse_entities() if message.text else message.parse_caption_entities()
    for entity, value in entities.items():
        if entity.type == MessageEntity.MENTION and value.lower() == f"@{me.username.lower()}":
            return True
        if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == me.id:
            return True
    commands = [
        v for e, v in entities.items() if e.type == MessageEntity.BOT_COMMAND and not e.offset
    ]
    if not commands:
        return False
    command, _, target = commands[0].partition("@")
    return target.lower() == me.username.lower() if target else parse_command(command) is not None


def _without_mention(text: str, me: BotIdentity) -> str:
    stripped = re.sub(rf"@{re.escape(me.username)}\b", "", text, flags=re.IGNORECASE).strip()
    return stripped or text
