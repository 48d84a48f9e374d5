"""The sessions API under /v1/ (API keys), plus /openapi.json."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from botkit.adapters.web.events import LiveEvents
from botkit.adapters.web.overrides import allowed, tuned
from botkit.adapters.web.protocol import (
    ApiError,
    body_limit,
    endpoint,
    message_text,
    read_json,
    wants_stream,
)
from botkit.adapters.web.replies import Idempotency, Replies, announce
from botkit.adapters.web.schemas import (
    SEED_MESSAGES,
    HandoffInfo,
    MessageReply,
    NewHandoff,
    NewMessage,
    NewSession,
    SeedMessage,
    SessionCreated,
    SessionMessage,
    SessionState,
)
from botkit.adapters.web.sessions import Session, Sessions
from botkit.messages import Turn
from botkit.pipeline import Pipeline
from botkit.prompting.tokens import count_message_tokens
from botkit.stores.base import ConversationStore

HISTORY_LIMIT = 200
"""At most this many of a session's newest messages are returned."""


class KeyAccess:
    """`Authorization: Bearer KEY` with one of the configured keys; the key's hash owns sessions."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._digests = [_digest(key) for key in keys]

    def owner(self, request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("send an API key as 'Authorization: Bearer KEY'")
        digest = _digest(token.strip())
        # Compare with every key, each in constant time: no timing tells which key nearly matched.
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        if not matched:
            raise _unauthorized("the API key is not valid")
        return "key:" + digest.hex()


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def choose_bot(requested: str | None, served: Sequence[str], *, default_first: bool) -> str:
    """The bot a new session talks to; omitted, it is the only (or first) one served."""
    if requested is None:
        if len(served) == 1 or default_first:
            return served[0]
        raise ApiError(422, "invalid_request", f"bot: required (served: {', '.join(served)})")
    if requested not in served:
        raise ApiError(
            422,
            "unknown_bot",
            f"bot: {requested!r} is not served here (served: {', '.join(served)})",
        )
    return requested


async def history(store: ConversationStore, session: Session) -> list[Turn]:
    return await store.recent(session.conversation_key, HISTORY_LIMIT)


def seed_turns(messages: Sequence[SeedMessage], *, max_chars: int) -> list[Turn]:
    """A new session's opening history, each message within the message size limit."""
    turns = []
    now = time.time()
    for number, message in enumerate(messages):
        if len(message.content) > max_chars:
            raise ApiError(
                413,
                "message_too_large",
                f"messages.{number}.content: longer than {max_chars} characters",
                param=f"messages.{number}.content",
            )
        tokens = count_message_tokens(message.content)
        turns.append(Turn(message.role, message.content, now, tokens))
    return turns


def session_message(turn: Turn) -> SessionMessage:
    return SessionMessage(
        role=turn.role,
        content=turn.content,
        time=datetime.fromtimestamp(turn.at, UTC),
        name=turn.name,
        kind=turn.kind,
        in_reply_to=turn.reply_to,
    )


IDEMPOTENCY_KEY = re.compile(r"[!-~]([ -~]{0,253}[!-~])?")
"""1 to 255 printable ASCII characters, not starting or ending with a space (HTTP would
drop those): the OpenAPI document states this same pattern."""


def idempotency_key(request: Request) -> str | None:
    """The `Idempotency-Key` header: any 1 to 255 printable ASCII characters (a UUID, say)."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(
            422, "invalid_request", "Idempotency-Key: must be 1 to 255 printable ASCII characters"
        )
    return key


class SessionsApi:
    """The keyed sessions API: each key sees only the sessions it created."""

    def __init__(
        self,
        *,
        pipelines: Mapping[str, Pipeline],
        store: ConversationStore,
        sessions: Sessions,
        replies: Replies,
        events: LiveEvents,
        access: KeyAccess,
        max_message_chars: int,
        openapi: dict[str, Any],
    ) -> None:
        self._pipelines = pipelines
        self._store = store
        self._sessions = sessions
        self._replies = replies
        self._events = events
        self._access = access
        self._max_chars = max_message_chars
        self._openapi = openapi

    def routes(self) -> list[Route]:
        return [
            Route("/v1/sessions", endpoint(self.create_session), methods=["POST"]),
            Route("/v1/sessions/{session_id}", endpoint(self.read_session), methods=["GET"]),
            Route("/v1/sessions/{session_id}", endpoint(self.delete_session), methods=["DELETE"]),
            Route(
                "/v1/sessions/{session_id}/messages", endpoint(self.post_message), methods=["POST"]
            ),
            Route("/v1/sessions/{session_id}/events", endpoint(self.events), methods=["GET"]),
            Route("/v1/sessions/{session_id}/handoff", endpoint(self.hand_off), methods=["POST"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
        ]

    async def create_session(self, request: Request) -> Response:
        owner = self._access.owner(request)
        limit = body_limit(self._max_chars * SEED_MESSAGES)
        body = await read_json(request, NewSession, max_bytes=limit)
        bot = choose_bot(body.bot, list(self._pipelines), default_first=False)
        asked = body.completion.model_dump(exclude_none=True) if body.completion else {}
        completion = allowed(self._pipelines[bot].bot, asked, field="completion")
        session = await self._sessions.create(
            bot=bot,
            owner=owner,
            user=body.user,
            metadata=body.metadata,
            completion=completion,
            history=seed_turns(body.messages, max_chars=self._max_chars),
        )
        created = SessionCreated(session_id=session.id, bot=session.bot, created=session.created)
        return JSONResponse(created.model_dump(mode="json"), status_code=201)

    async def read_session(self, request: Request) -> Response:
        session = await self._session(request)
        # The position first: a turn stored meanwhile is sent again live, never missed.
        last_event_id = await self._events.last_event_id(session.conversation_key)
        state = SessionState(
            session_id=session.id,
            bot=session.bot,
            user=session.user,
            created=session.created,
            metadata=session.metadata,
            completion=session.completion,
            messages=[session_message(t) for t in await history(self._store, session)],
            last_event_id=last_event_id,
        )
        return JSONResponse(state.model_dump(mode="json"))

    async def delete_session(self, request: Request) -> Response:
        await self._sessions.delete(await self._session(request))
        return Response(status_code=204)

    async def post_message(self, request: Request) -> Response:
        session = await self._session(request)
        key = idempotency_key(request)
        body = await read_json(request, NewMessage, max_bytes=body_limit(self._max_chars))
        text = message_text(body.message, max_chars=self._max_chars)
        idempotency = None
        if key is not None:
            idempotency = Idempotency.of(key, owner=session.owner, session=session.id, text=text)
        message = session.message(text, message_id=idempotency.message_id if idempotency else None)
        message_id = message.message_id or ""
        return await self._replies.respond(
            tuned(self._pipelines[session.bot], session.completion),
            session,
            message,
            stream=wants_stream(request, body.stream),
            describe=lambda reply: MessageReply.of(reply, message_id).model_dump(mode="json"),
            idempotency=idempotency,
        )

    async def events(self, request: Request) -> Response:
        session = await self._session(request)
        return await self._events.stream(
            request,
            session.conversation_key,
            describe=lambda turn: session_message(turn).model_dump(mode="json"),
            still_there=lambda: self._sessions.exists(session.id),
        )

    async def hand_off(self, request: Request) -> Response:
        """Hand the session to people, as if the customer had sent /human: 201 with the new
        handoff (the customer is told), 200 with the one already open (nobody is told again)."""
        session = await self._session(request)
        body = await read_json(request, NewHandoff, max_bytes=body_limit(0))
        pipeline = self._pipelines[session.bot]
        if pipeline.handoffs is None:
            raise ApiError(
                409,
                "handoff_unavailable",
                f"bot {session.bot!r} hands nothing to people: it has no [handoff] table in "
                f"bots/{session.bot}.toml",
            )
        message = session.message("", message_id=f"api_{secrets.token_urlsafe(12)}")
        handoff, started = await pipeline.hand_off(
            message, trigger="api", reason=body.reason.strip(), address=session.address
        )
        if started:
            await announce(pipeline.store, session.conversation_key)
        info = HandoffInfo.of(handoff).model_dump(mode="json")
        return JSONResponse(info, status_code=201 if started else 200)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(self._openapi)

    async def _session(self, request: Request) -> Session:
        owner = self._access.owner(request)
        return await self._sessions.find(request.path_params["session_id"], owner=owner)
