"""Web sessions: records in the store, each the conversation of one customer with one bot."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botkit.adapters.web.protocol import not_found
from botkit.errors import StoreError
from botkit.handoff import Handoffs
from botkit.messages import IncomingMessage, Turn, conversation_key
from botkit.stores.base import Store

logger = logging.getLogger(__name__)

CHANNEL = "web"
PUBLIC = "public"
"""The owner of chat-page sessions: whoever holds the (unguessable) session id."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """One conversation with a bot, owned by an API key (its hash) or by the chat page."""

    id: str
    bot: str
    owner: str
    user: str
    created: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    completion: dict[str, Any] = field(default_factory=dict)
    """The completion parameters the session set for itself (the bot allowed them)."""

    @property
    def conversation_key(self) -> str:
        return conversation_key(self.bot, CHANNEL, self.id)

    @property
    def address(self) -> dict[str, Any]:
        """Where a reply or a person's message goes, as the inbox keeps it for any worker."""
        return {"session": self.id}

    def message(self, text: str, *, message_id: str | None = None) -> IncomingMessage:
        return IncomingMessage(
            channel=CHANNEL,
            bot=self.bot,
            conversation_id=self.id,
            user_id=self.user,
            text=text,
            message_id=message_id or f"msg_{secrets.token_urlsafe(12)}",
        )


class Sessions:
    """Session records under `web:session:<id>`; a session exists only for its owner."""

    def __init__(self, store: Store, bots: Iterable[str], *, handoffs: Handoffs | None) -> None:
        self._store = store
        self._bots = set(bots)
        self._handoffs = handoffs

    async def create(
        self,
        *,
        bot: str,
        owner: str,
        user: str | None = None,
        metadata: dict[str, Any] | None = None,
        completion: dict[str, Any] | None = None,
        history: Sequence[Turn] = (),
        ttl: float | None = None,
    ) -> Session:
        """A new session, opening with `history` (stored first: a session that cannot be
        stored whole leaves no turns behind). Raises `StoreError`."""
        session_id = secrets.token_urlsafe(24)
        session = Session(
            id=session_id,
            bot=bot,
            owner=owner,
            user=user or session_id,
            created=datetime.now(UTC),
            metadata=metadata or {},
            completion=completion or {},
        )
        record = {
            "bot": session.bot,
            "owner": session.owner,
            "user": session.user,
            "created": session.created.isoformat(),
            "metadata": session.metadata,
            "completion": session.completion,
        }
        if history:
            await self._store.append(session.conversation_key, history)
        try:
            await self._store.put_record(_record_key(session_id), record, ttl=ttl)
        except StoreError:
            if history:
                await self._forget_turns(session.conversation_key)
            raise
        return session

    async def _forget_turns(self, key: str) -> None:
        try:
            await self._store.reset(key)
        except StoreError as err:  # nobody can reach them: the session does not exist
            logger.warning("could not remove the turns of an unsaved session: %s", err)

    async def find(self, session_id: str, *, owner: str) -> Session:
        """The session, or a 404 when it does not exist *for this owner*."""
        if len(session_id) > 64:  # ids are 32 characters: not one, and not worth a lookup
            raise not_found()
        session = await self.get(session_id)
        if session is None or session.owner != owner:
            raise not_found()
        return session

    async def get(self, session_id: str) -> Session | None:
        """The session whoever owns it (a worker taking up its messages), if it exists."""
        record = await self._store.get_record(_record_key(session_id))
        if record is None or record.get("bot") not in self._bots:
            return None
        return Session(
            id=session_id,
            bot=record["bot"],
            owner=record["owner"],
            user=record["user"],
            created=datetime.fromisoformat(record["created"]),
            metadata=record.get("metadata") or {},
            completion=record.get("completion") or {},
        )

    async def exists(self, session_id: str) -> bool:
        return await self._store.get_record(_record_key(session_id)) is not None

    async def delete(self, session: Session) -> None:
        """Forget the session and its conversation; a handoff under way ends as if the
        customer had sent /reset (the desk sees it cancelled)."""
        key = session.conversation_key
        handoff = await self._store.handoff_current(key)
        if handoff is not None and self._handoffs is not None:
            await self._handoffs.cancel(handoff)
        await self._store.reset(key)
        await self._store.delete_record(_record_key(session.id))


def _record_key(session_id: str) -> str:
    return f"web:session:{session_id}"
