"""The chat page at / and its embeddable widget, on public per-browser sessions under /chat/.

The page needs no API key: whoever holds a session's unguessable id may use it,
and each client address may send only so many messages a minute, so an open
page cannot run up the LLM bill. Replies are Markdown rendered here, with raw
HTML escaped, so neither the model nor a user can put markup on the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from botkit.adapters.web.api import choose_bot, history, session_message
from botkit.adapters.web.events import LiveEvents
from botkit.adapters.web.protocol import (
    ApiError,
    body_limit,
    endpoint,
    message_text,
    read_json,
    wants_stream,
)
from botkit.adapters.web.ratelimit import ClientRateLimit
from botkit.adapters.web.replies import Replies
from botkit.adapters.web.schemas import (
    NewMessage,
    NewPublicSession,
    PageMessage,
    PageReply,
    PageSession,
)
from botkit.adapters.web.sessions import PUBLIC, Session, Sessions
from botkit.messages import Reply, Turn
from botkit.pipeline import Pipeline
from botkit.stores.base import ConversationStore

STATIC = Path(__file__).parent / "static"
SESSION_TTL = 30 * 24 * 3600.0
"""A chat-page session is forgotten this long after it began (the browser then starts anew)."""

# The page loads nothing from elsewhere and runs no inline script; any site may frame it.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors *"
)


@cache
def _markdown() -> MarkdownIt:
    # "html": False escapes raw HTML; images are off so a reply cannot make the browser fetch.
    renderer = MarkdownIt("commonmark", {"html": False, "breaks": True})
    return renderer.enable(["table", "strikethrough"]).disable("image")


def to_html(markdown: str) -> str:
    """Markdown as HTML in which any HTML the text contained is shown, not interpreted."""
    html: str = _markdown().render(markdown)
    return html


class ChatPage:
    """GET / (the page), GET /embed.js (the widget) and the /chat/ session routes they use."""

    def __init__(
        self,
        *,
        pipelines: Mapping[str, Pipeline],
        store: ConversationStore,
        sessions: Sessions,
        replies: Replies,
        events: LiveEvents,
        message_limit: ClientRateLimit,
        session_limit: ClientRateLimit,
        max_message_chars: int,
        enabled: bool,
    ) -> None:
        self._pipelines = pipelines
        self._store = store
        self._sessions = sessions
        self._replies = replies
        self._events = events
        self._message_limit = message_limit
        self._session_limit = session_limit
        self._max_chars = max_message_chars
        self._enabled = enabled

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.page, methods=["GET"], include_in_schema=False),
            Route("/embed.js", self.embed, methods=["GET"], include_in_schema=False),
            Mount("/chat/static", app=StaticFiles(directory=STATIC), name="chat-static"),
            Route("/chat/sessions", endpoint(self.create_session), methods=["POST"]),
            Route("/chat/sessions/{session_id}", endpoint(self.read_session), methods=["GET"]),
            Route("/chat/sessions/{session_id}", endpoint(self.delete_session), methods=["DELETE"]),
            Route(
                "/chat/sessions/{session_id}/messages",
                endpoint(self.post_message),
                methods=["POST"],
            ),
            Route("/chat/sessions/{session_id}/events", endpoint(self.events), methods=["GET"]),
        ]

    async def page(self, request: Request) -> Response:
        headers = {"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache"}
        return Response(_static("index.html"), media_type="text/html", headers=headers)

    async def embed(self, request: Request) -> Response:
        return Response(
            _static("embed.js"),
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
        )

    async def create_session(self, request: Request) -> Response:
        self._check_enabled()
        body = await read_json(request, NewPublicSession, max_bytes=body_limit(self._max_chars))
        bot = choose_bot(body.bot, list(self._pipelines), default_first=True)
        await self._session_limit.admit(_client(request))
        session = await self._sessions.create(bot=bot, owner=PUBLIC, ttl=SESSION_TTL)
        return JSONResponse(await self._state(session), status_code=201)

    async def read_session(self, request: Request) -> Response:
        return JSONResponse(await self._state(await self._session(request)))

    async def delete_session(self, request: Request) -> Response:
        await self._sessions.delete(await self._session(request))
        return Response(status_code=204)

    async def post_message(self, request: Request) -> Response:
        session = await self._session(request)
        body = await read_json(request, NewMessage, max_bytes=body_limit(self._max_chars))
        message = session.message(message_text(body.message, max_chars=self._max_chars))
        await self._message_limit.admit(_client(request))
        message_id = message.message_id or ""

        def describe(reply: Reply) -> dict[str, Any]:
            answer = PageReply.of(reply, message_id, html=to_html(reply.text))
            return answer.model_dump(mode="json")

        return await self._replies.respond(
            self._pipelines[session.bot],
            session,
            message,
            stream=wants_stream(request, body.stream),
            describe=describe,
        )

    async def events(self, request: Request) -> Response:
        session = await self._session(request)
        return await self._events.stream(
            request,
            session.conversation_key,
            describe=lambda turn: _page_message(turn).model_dump(mode="json"),
            still_there=lambda: self._sessions.exists(session.id),
        )

    async def _session(self, request: Request) -> Session:
        self._check_enabled()
        return await self._sessions.find(request.path_params["session_id"], owner=PUBLIC)

    async def _state(self, session: Session) -> dict[str, object]:
        pipeline = self._pipelines[session.bot]
        # The position first: a turn stored meanwhile is sent again live, never missed.
        last_event_id = await self._events.last_event_id(session.conversation_key)
        state = PageSession(
            session_id=session.id,
            bot=session.bot,
            title=pipeline.bot.description or session.bot,
            welcome_html=to_html(pipeline.composer.render("welcome", session.message(""))),
            messages=[_page_message(t) for t in await history(self._store, session)],
            last_event_id=last_event_id,
        )
        return state.model_dump(mode="json")

    def _check_enabled(self) -> None:
        if not self._enabled:
            raise ApiError(403, "chat_page_off", "the public chat is turned off on this server")


def _page_message(turn: Turn) -> PageMessage:
    """A message ready to show: the bot's and people's Markdown as safe HTML, the
    customer's own text as text."""
    html = to_html(turn.content) if turn.role != "user" else None
    return PageMessage(**session_message(turn).model_dump(), html=html)


def _client(request: Request) -> str:
    # uvicorn has already put a trusted proxy's X-Forwarded-For here (FORWARDED_ALLOW_IPS).
    return request.client.host if request.client else "unknown"


@cache
def _static(name: str) -> bytes:
    return (STATIC / name).read_bytes()
