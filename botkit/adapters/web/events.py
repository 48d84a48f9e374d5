"""`GET …/sessions/{id}/events`: a session's messages as Server-Sent Events, as they are
stored, by whichever worker stores them.

A stream reads the conversation from a cursor and waits on the store's feed for the
next change (Redis tells every worker at once; SQLite readers look again twice a
second). Each event's id says where it was read, so a client that reconnects with
`Last-Event-ID` gets exactly what it missed, once:

    event: agent      a person's message, with their `name`
    event: notice     the bot telling the customer about the handoff: `kind` handoff,
                      joined, resolved or timeout
    event: answer     the bot's answer (live, or finished by another worker after a crash)
    event: user       a customer's message
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from botkit.adapters.web.protocol import ApiError, sse_event
from botkit.errors import StoreError
from botkit.messages import Turn
from botkit.stores.base import Store

logger = logging.getLogger(__name__)

PING_SECONDS = 15.0
"""A comment line this often keeps proxies from closing a quiet stream."""
RETRY_MS = 1000
"""How soon a browser reconnects after the stream ends (a worker stopping, say)."""
NOTICES = frozenset({"handoff", "joined", "resolved", "timeout"})

Describe = Callable[[Turn], dict[str, Any]]


def conversation_topic(conversation: str) -> str:
    """The feed topic announcing a conversation's new turns (`botkit.handoff` uses it too)."""
    return f"conversation:{conversation}"


def event_name(turn: Turn) -> str:
    if turn.role == "assistant":
        return "notice" if turn.kind in NOTICES else "answer"
    return turn.role


def event_id(cursor: int, sent: int) -> str:
    """`CURSOR:N`: the Nth turn stored after the store's position CURSOR. (Store positions
    are not consecutive in every store, so a turn's own position cannot be the id.)"""
    return f"{cursor}:{sent}"


EVENT_ID = re.compile(r"[0-9]{1,20}:[0-9]{1,20}")
"""What `event_id` writes (ASCII digits only: `str.isdigit` would take "²")."""


def parse_event_id(value: str) -> tuple[int, int]:
    if not EVENT_ID.fullmatch(value):
        raise ApiError(
            422, "invalid_request", f"Last-Event-ID: {value[:40]!r} is not an id this server sent"
        )
    cursor, _, sent = value.partition(":")
    return int(cursor), int(sent)


class LiveEvents:
    """The event streams of one worker; `stop()` ends them all (the server is stopping)."""

    def __init__(self, store: Store, *, ping: float = PING_SECONDS) -> None:
        self._store = store
        self._ping = ping
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def last_event_id(self, conversation: str) -> str:
        """The id a client passes to get only what is stored from now on."""
        return event_id(await self._store.cursor(conversation), 0)

    async def stream(
        self,
        request: Request,
        conversation: str,
        *,
        describe: Describe,
        still_there: Callable[[], Awaitable[bool]],
    ) -> StreamingResponse:
        """The conversation's turns after `Last-Event-ID` (or `?after=`; default: from now)
        until the client leaves, the worker stops, or `still_there()` says the session is
        gone (asked at each ping). Raises `StoreError` (a 503) before the stream starts."""
        given = request.headers.get("last-event-id")
        if given is None:
            given = request.query_params.get("after")
        if given is None:
            start = (await self._store.cursor(conversation), 0)
        else:
            start = parse_event_id(given)
        return StreamingResponse(
            self._events(conversation, start, describe, still_there),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _events(
        self,
        conversation: str,
        start: tuple[int, int],
        describe: Describe,
        still_there: Callable[[], Awaitable[bool]],
    ) -> AsyncIterator[bytes]:
        # Lines with no blank line after them: they dispatch no (empty) event of their own.
        yield f"retry: {RETRY_MS}\n".encode()
        loop = asyncio.get_running_loop()
        stopping = asyncio.ensure_future(self._stopping.wait())
        changed: asyncio.Future[bool] | None = None
        try:
            async with self._store.subscribe(conversation_topic(conversation)) as changes:
                cursor, sent = start
                spoke = loop.time()
                failing = False
                while True:
                    try:
                        end, turns = await self._store.turns_since(conversation, cursor)
                    except StoreError as err:  # keep the client; look again after a wait
                        if not failing:
                            logger.warning("live events of %s: %s", conversation, err)
                        failing = True
                    else:
                        failing = False
                        if len(turns) < sent:  # reset since the client's id: all is new
                            sent = 0
                        for number, turn in enumerate(turns[sent:], start=sent + 1):
                            yield sse_event(
                                event_name(turn), describe(turn), id=event_id(cursor, number)
                            )
                            spoke = loop.time()
                        cursor, sent = end, 0
                    if loop.time() - spoke >= self._ping:
                        if not await _asked(still_there):
                            return
                        yield b": ping\n"
                        spoke = loop.time()
                    changed = asyncio.ensure_future(
                        changes.wait(max(spoke + self._ping - loop.time(), 0.0))
                    )
                    await asyncio.wait({changed, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    if stopping.done():
                        return
        finally:
            for waiting in (stopping, changed):
                if waiting is not None:
                    waiting.cancel()


async def _asked(still_there: Callable[[], Awaitable[bool]]) -> bool:
    try:
        return await still_there()
    except StoreError:
        return True  # cannot tell now: keep the stream
