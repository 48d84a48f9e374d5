"""Telegram's updates, checked before python-telegram-bot or botkit reads them (see
`botkit.adapters.payloads`).

python-telegram-bot keeps what it is given: a chat id that is an object becomes
a `Chat` whose id is an object, and fails later ("unhashable type: 'dict'") far
from the edge; a date beyond year 9999 fails while it parses, and in polling one
such update fails its whole batch again at every poll, for ever. So each update
is checked here first:

    read_update     the webhook: an update, or `PayloadError` naming the field
    CheckedUpdates  polling: getUpdates' request, which hands python-telegram-bot an
                    unreadable update as a bare `{"update_id": N}` (nothing to answer,
                    and its offset is confirmed like any other)

Only message updates are read further than their id (the bot asks for no other
kind); what python-telegram-bot itself refuses to parse is refused too.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from pydantic import Field
from telegram import Bot, Update
from telegram.request import HTTPXRequest

from botkit.adapters.payloads import Checked, check
from botkit.errors import PayloadError

__all__ = ["CheckedUpdates", "log_unreadable", "read_update"]

logger = logging.getLogger(__name__)

Id = Annotated[int, Field(ge=-(2**63), lt=2**63)]
"""Telegram's ids fit in 64 bits (chat ids in 52)."""
Date = Annotated[int, Field(ge=0, le=253_402_300_799)]
"""Unix time, up to the last second of year 9999 (what a `datetime` holds)."""
Offset = Annotated[int, Field(ge=0, lt=2**31)]


class _User(Checked):
    id: Id
    is_bot: bool
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None


class _Chat(Checked):
    id: Id
    type: str


class _Entity(Checked):
    type: str
    offset: Offset
    length: Offset
    user: _User | None = None


class _Replied(Checked):
    """The message a message replies to: the bot only asks who wrote it."""

    from_: _User | None = Field(default=None, alias="from")


class _Message(Checked):
    message_id: Id
    date: Date
    chat: _Chat
    from_: _User | None = Field(default=None, alias="from")
    text: str | None = None
    caption: str | None = None
    entities: list[_Entity] | None = None
    caption_entities: list[_Entity] | None = None
    reply_to_message: _Replied | None = None
    message_thread_id: Id | None = None
    is_topic_message: bool | None = None


class _CallbackQuery(Checked):
    """A click on a button of the bot's (the feedback buttons read these)."""

    id: str
    from_user: _User = Field(alias="from")
    data: str | None = None
    message: _Message | None = None


class _Update(Checked):
    update_id: Annotated[int, Field(ge=0, lt=2**63)]
    message: _Message | None = None
    callback_query: _CallbackQuery | None = None


def read_update(data: Any, bot: Bot | None) -> Update:
    """The update `data` (a JSON object) carries; `PayloadError` when a field botkit or
    python-telegram-bot reads has the wrong type, or python-telegram-bot cannot parse it."""
    check(_Update, data)
    try:
        return Update.de_json(data, bot)
    except Exception as err:  # whatever its parsers raise on a payload they cannot read
        problem = " ".join(f"{type(err).__name__}: {err}".split())  # one line in the log
        raise PayloadError(f"python-telegram-bot cannot read it ({problem:.120})") from None


class CheckedUpdates(HTTPXRequest):
    """getUpdates' request (python-telegram-bot's `get_updates_request`): the updates it
    returns are checked, and an unreadable one is handed on as its bare id, once logged."""

    def __init__(self, bot: str) -> None:
        super().__init__(connection_pool_size=1)  # what python-telegram-bot gives polling
        self._bot = bot

    def parse_json_payload(self, payload: bytes) -> dict[str, Any]:  # type: ignore[override]
        # python-telegram-bot's hook for reading a response (a static method there).
        data = super().parse_json_payload(payload)
        if isinstance(updates := data.get("result"), list):
            data["result"] = [checked for raw in updates if (checked := self._checked(raw))]
        return data

    def _checked(self, raw: Any) -> Any:
        try:
            read_update(raw, None)
            return raw
        except PayloadError as err:
            log_unreadable(self._bot, raw, err)
            update_id = _update_id(raw)
            # Telegram numbers every update: one without a number cannot be confirmed.
            return None if update_id is None else {"update_id": update_id}


def log_unreadable(bot: str, data: Any, err: PayloadError) -> None:
    """The one line for an update that is confirmed to Telegram and otherwise ignored."""
    update_id = _update_id(data)
    which = "an update" if update_id is None else f"update {update_id}"
    logger.warning("bot %s: ignored Telegram %s that botkit cannot read: %s", bot, which, err)


def _update_id(data: Any) -> int | None:
    update_id = data.get("update_id") if isinstance(data, dict) else None
    return update_id if isinstance(update_id, int) and not isinstance(update_id, bool) else None
