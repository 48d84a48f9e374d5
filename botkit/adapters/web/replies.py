"""Answering web messages.

A message is in the store's inbox before the client hears anything (the JSON 200,
or the first byte of the event stream): a store that cannot take it is a 503, and
nothing of it is kept. It is then answered in a task of its own, not the
request's, so a client that hangs up still has its answer stored; a worker that
dies mid-answer leaves it in the inbox for another worker (`resume`). A repeated
`Idempotency-Key` finds the first message in the inbox already, and is answered
with the first reply, from whichever worker produced it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.responses import JSONResponse, Response, StreamingResponse

from botkit.adapters.web.events import PING_SECONDS, conversation_topic
from botkit.adapters.web.protocol import RETRY_AFTER, ApiError, sse_event, unavailable
from botkit.adapters.web.sessions import Session
from botkit.errors import StoreError
from botkit.inbox import settle
from botkit.messages import IncomingMessage, Reply, Usage
from botkit.pipeline import Pipeline, ReplyStream
from botkit.stores.base import InboxItem, Store

logger = logging.getLogger(__name__)
T = TypeVar("T")

IDEMPOTENCY_SECONDS = 24 * 3600.0
"""How long a repeated Idempotency-Key is answered with the first reply (the inbox
recognises a message accepted again for a day)."""
REPLAY_WAIT = 60.0
"""How long a repeat waits for the first request's reply before answering 409."""
FAILED = "the reply could not be completed now; the message is kept and will be answered later"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

Describe = Callable[[Reply], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A client's `Idempotency-Key` for one message of one session.

    The message's id is derived from the key (and its owner and session), so a repeat
    is the same message to the inbox, which keeps each message once.
    """

    message_id: str
    fingerprint: str
    """The message text's hash: the same key with another text is refused."""

    @classmethod
    def of(cls, key: str, *, owner: str, session: str, text: str) -> Idempotency:
        scoped = hashlib.sha256(f"{owner}\0{session}\0{key}".encode()).digest()
        message_id = "msg_" + base64.urlsafe_b64encode(scoped).decode()[:22]
        return cls(message_id, hashlib.sha256(text.encode()).hexdigest()[:32])


@dataclass(frozen=True, slots=True)
class Outcome:
    """How answering an accepted message ended: its reply, or what failed."""

    reply: Reply | None
    error: Exception | None = None

    def failure(self) -> ApiError:
        """What the client hears of a failure: the message is kept either way. A store
        that failed is a 503 (it is answered once the store is back); anything else a 500."""
        if isinstance(self.error, StoreError):
            return unavailable(FAILED)
        return ApiError(500, "internal", FAILED)


class Replies:
    """Accepts, answers and replays messages; `aclose` waits for the answers under way.

    A client that hangs up mid-answer does not cancel it (the answer is still stored
    and shown on the next visit), and `aclose` gives the answers under way `grace`
    seconds before the store closes; any left unfinished stay in the inbox.
    """

    def __init__(self, *, grace: float, ping: float = PING_SECONDS) -> None:
        self._grace = grace
        self._ping = ping
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    async def respond(
        self,
        pipeline: Pipeline,
        session: Session,
        message: IncomingMessage,
        *,
        stream: bool,
        describe: Describe,
        idempotency: Idempotency | None = None,
    ) -> Response:
        """The reply as one JSON body, or streamed as Server-Sent Events."""
        if self._closing:
            raise unavailable("the server is shutting down")
        address = session.address
        dedupe = None
        if idempotency is not None:
            address |= {"idempotency": idempotency.fingerprint}
            dedupe = f"web/idempotency/{message.message_id}"
        try:
            item = await pipeline.accept(message, address=address, dedupe=dedupe)
        except StoreError as err:
            logger.warning("bot %s: cannot accept a web message: %s", pipeline.bot.name, err)
            raise unavailable("the message cannot be stored now; send it again shortly") from err
        if item is None:
            assert idempotency is not None
            return await self._replay(pipeline.store, message, idempotency, stream, describe)
        if stream:
            return self._stream(pipeline, message, item, describe)
        outcome = await asyncio.shield(self._start(self._answer(pipeline, message, item, None)))
        if outcome.reply is None:
            raise outcome.failure()
        return JSONResponse(describe(outcome.reply))

    async def resume(self, pipeline: Pipeline, message: IncomingMessage, item: InboxItem) -> None:
        """Answer a message a dead worker accepted (raises when it fails, so the inbox tries
        again); the answer is stored and announced to the session's live views."""
        stream = pipeline.stream(message, item=item, incremental=False)
        await _carry_out(pipeline.store, stream, message, item, None)
        await announce(pipeline.store, message.conversation_key)

    def _stream(
        self, pipeline: Pipeline, message: IncomingMessage, item: InboxItem, describe: Describe
    ) -> StreamingResponse:
        """`delta` events, then `done` with the whole reply (or `error`)."""
        queue: asyncio.Queue[str | Outcome | None] = asyncio.Queue()

        async def produce() -> None:
            outcome = None
            try:
                outcome = await self._answer(pipeline, message, item, queue.put_nowait)
            finally:
                queue.put_nowait(outcome)

        self._start(produce())

        async def events() -> AsyncIterator[bytes]:
            while True:
                try:
                    entry = await asyncio.wait_for(queue.get(), self._ping)
                except TimeoutError:  # a slow answer: a comment keeps proxies from cutting it
                    yield b": ping\n"
                    continue
                if entry is None:
                    break
                if isinstance(entry, str):
                    yield sse_event("delta", {"delta": entry})
                elif entry.reply is not None:
                    yield sse_event("done", describe(entry.reply))
                    return
                else:
                    failure = entry.failure()
                    yield sse_event("error", {"error": {"code": failure.code, "message": FAILED}})
                    return
            yield sse_event("error", {"error": {"code": "internal", "message": FAILED}})

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    async def _answer(
        self,
        pipeline: Pipeline,
        message: IncomingMessage,
        item: InboxItem,
        emit: Callable[[str], None] | None,
    ) -> Outcome:
        """Answer an accepted message, then let the inbox forget it; without a reply when it
        failed (logged, and the inbox tries it again later)."""
        stream = pipeline.stream(message, item=item, incremental=emit is not None)
        failed: list[Exception] = []

        async def work() -> None:
            try:
                await _carry_out(pipeline.store, stream, message, item, emit)
            except Exception as err:
                failed.append(err)
                raise

        await settle(pipeline.store, item, work())
        await announce(pipeline.store, message.conversation_key)
        return Outcome(stream.reply, failed[0] if failed else None)

    async def _replay(
        self,
        store: Store,
        message: IncomingMessage,
        idempotency: Idempotency,
        stream: bool,
        describe: Describe,
    ) -> Response:
        """The first reply to a repeated Idempotency-Key, once there is one."""
        record = await _first_reply(store, message)
        if record.get("fingerprint") != idempotency.fingerprint:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "Idempotency-Key: already used for another message in this session",
            )
        prompt, completion = record["usage"]
        reply = Reply(
            text=record["text"],
            conversation_id=message.conversation_id,
            kind=record["kind"],
            in_reply_to=message.message_id,
            finish_reason=record["finish_reason"],
            usage=Usage(prompt, completion),
        )
        headers = {"Idempotent-Replayed": "true"}
        if not stream:
            return JSONResponse(describe(reply), headers=headers)

        async def events() -> AsyncIterator[bytes]:
            if reply.text:
                yield sse_event("delta", {"delta": reply.text})
            yield sse_event("done", describe(reply))

        return StreamingResponse(
            events(), media_type="text/event-stream", headers=SSE_HEADERS | headers
        )

    def _start(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
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
                "stopped %d web replies still running after %.0f s; they stay in the inbox",
                len(late),
                self._grace,
            )
            await asyncio.wait(late)


async def _carry_out(
    store: Store,
    stream: ReplyStream,
    message: IncomingMessage,
    item: InboxItem,
    emit: Callable[[str], None] | None,
) -> None:
    """Produce the reply (`emit` gets its deltas); for an idempotent message, keep it for
    repeats before the inbox forgets the message, so a repeat always finds one or the other."""
    async for delta in stream:
        if emit is not None:
            emit(delta)
    reply = stream.reply
    fingerprint = item.payload.get("address", {}).get("idempotency")
    if reply is not None and fingerprint is not None:
        assert message.message_id is not None
        record = {
            "text": reply.text,
            "kind": reply.kind,
            "finish_reason": reply.finish_reason,
            "usage": [reply.usage.prompt_tokens, reply.usage.completion_tokens],
            "fingerprint": fingerprint,
        }
        await store.put_record(_reply_key(message.message_id), record, ttl=IDEMPOTENCY_SECONDS)


async def _first_reply(store: Store, message: IncomingMessage) -> dict[str, Any]:
    """Wait for the reply to the message a repeated key names (any worker may produce it)."""
    assert message.message_id is not None
    key = _reply_key(message.message_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REPLAY_WAIT
    async with store.subscribe(conversation_topic(message.conversation_key)) as changes:
        while (record := await store.get_record(key)) is None:
            left = deadline - loop.time()
            if left <= 0:
                raise ApiError(
                    409,
                    "idempotency_in_progress",
                    "Idempotency-Key: the first request with this key is still being answered; "
                    "try again shortly",
                    headers={"Retry-After": RETRY_AFTER},
                )
            await changes.wait(left)
    return record


async def announce(store: Store, conversation: str) -> None:
    """Tell the conversation's live views (on any worker) that it has new turns."""
    try:
        await store.publish(conversation_topic(conversation))
    except StoreError as err:  # they look again on their own within a poll interval
        logger.warning("could not announce new turns of %s: %s", conversation, err)


def _reply_key(message_id: str) -> str:
    return f"web:reply:{message_id}"
