"""Web sessions: records in the store, and replies that outlive the request asking for them."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from starlette.responses import JSONResponse, Response, StreamingResponse

from botkit.adapters.web.protocol import ApiError, not_found, sse_event
from botkit.messages import IncomingMessage, Reply, conversation_key
from botkit.pipeline import Pipeline
from botkit.stores.base import Store

logger = logging.getLogger(__name__)
T = TypeVar("T")

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

    @property
    def conversation_key(self) -> str:
        return conversation_key(self.bot, CHANNEL, self.id)

    def message(self, text: str) -> IncomingMessage:
        return IncomingMessage(
            channel=CHANNEL,
            bot=self.bot,
            conversation_id=self.id,
            user_id=self.user,
            text=text,
            message_id=f"msg_{secrets.token_urlsafe(12)}",
        )


class Sessions:
    """Session records under `web:session:<id>`; a session exists only for its owner."""

    def __init__(self, store: Store, bots: Iterable[str]) -> None:
        self._store = store
        self._bots = set(bots)

    async def create(
        self,
        *,
        bot: str,
        owner: str,
        user: str | None = None,
        metadata: dict[str, Any] | None = None,
        ttl: float | None = None,
    ) -> Session:
        session_id = secrets.token_urlsafe(24)
        session = Session(
            id=session_id,
            bot=bot,
            owner=owner,
            user=user or session_id,
            created=datetime.now(UTC),
            metadata=metadata or {},
        )
        record = {
            "bot": session.bot,
            "owner": session.owner,
            "user": session.user,
            "created": session.created.isoformat(),
            "metadata": session.metadata,
        }
        await self._store.put_record(_record_key(session_id), record, ttl=ttl)
        return session

    async def find(self, session_id: str, *, owner: str) -> Session:
        """The session, or a 404 when it does not exist *for this owner*."""
        if len(session_id) > 64:  # ids are 32 characters: not one, and not worth a lookup
            raise not_found()
        record = await self._store.get_record(_record_key(session_id))
        if record is None or record.get("owner") != owner or record.get("bot") not in self._bots:
            raise not_found()
        return Session(
            id=session_id,
            bot=record["bot"],
            owner=record["owner"],
            user=record["user"],
            created=datetime.fromisoformat(record["created"]),
            metadata=record.get("metadata") or {},
        )

    async def delete(self, session: Session) -> None:
        await self._store.reset(session.conversation_key)
        await self._store.delete_record(_record_key(session.id))


def _record_key(session_id: str) -> str:
    return f"web:session:{session_id}"


class Replies:
    """Runs each reply as a task of its own, not the request's.

    A client that hangs up mid-answer does not cancel it (the answer is still
    stored and shown on the next visit), and `aclose` waits for the replies
    under way before the store closes.
    """

    def __init__(self, *, grace: float) -> None:
        self._grace = grace
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    async def answer(self, pipeline: Pipeline, message: IncomingMessage) -> Reply:
        task = self._start(pipeline.handle(message))
        try:
            reply = await asyncio.shield(task)
        except Exception as err:  # logged by _finished; the client gets the JSON shape
            raise ApiError(500, "internal", "the reply could not be completed") from err
        if reply is None:  # only an empty message has no reply, and those are refused earlier
            raise ApiError(422, "invalid_request", "message: must not be empty")
        return reply

    async def respond(
        self,
        pipeline: Pipeline,
        message: IncomingMessage,
        *,
        stream: bool,
        describe: Callable[[Reply], dict[str, Any]],
    ) -> Response:
        """The reply as one JSON body, or streamed as Server-Sent Events."""
        if stream:
            return self.stream(pipeline, message, describe)
        return JSONResponse(describe(await self.answer(pipeline, message)))

    def stream(
        self,
        pipeline: Pipeline,
        message: IncomingMessage,
        describe: Callable[[Reply], dict[str, Any]],
    ) -> StreamingResponse:
        """The reply as SSE: `delta` events, then `done` with the whole reply (or `error`)."""
        queue: asyncio.Queue[str | Reply | None] = asyncio.Queue()

        async def produce() -> None:
            stream = pipeline.stream(message)
            try:
                async for delta in stream:
                    queue.put_nowait(delta)
            finally:
                queue.put_nowait(stream.reply)

        task = self._start(produce())

        async def events() -> AsyncIterator[bytes]:
            while (item := await queue.get()) is not None:
                if isinstance(item, str):
                    yield sse_event("delta", {"delta": item})
                else:
                    yield sse_event("done", describe(item))
                    return
            failure = "the reply could not be completed" if task.done() else "no reply"
            yield sse_event("error", {"error": {"code": "internal", "message": failure}})

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    def _start(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        if self._closing:
            work.close()
            raise ApiError(
                503, "unavailable", "the server is shutting down", headers={"Retry-After": "5"}
            )
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (err := task.exception()) is not None:
            logger.error("a web reply failed", exc_info=err)

    async def aclose(self) -> None:
        """Take no new messages; give the replies under way `grace` seconds to finish."""
        self._closing = True
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=self._grace)
        for task in late:
            task.cancel()
        if late:
            logger.warning(
                "stopped %d web replies still running after %.0f s", len(late), self._grace
            )
            await asyncio.wait(late)
