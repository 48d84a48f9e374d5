"""The web channel: the sessions API, the OpenAPI document and the chat page.

api.py        /v1/sessions (API keys), /openapi.json
answers.py    /v1/answers: one question, from the FAQ and the documents given
completions.py  /v1/models and /v1/chat/completions: every bot as an OpenAI model
overrides.py  a session's own completion parameters (`session_overrides`)
page.py       the chat page at /, /embed.js, and its public sessions under /chat/
sessions.py   session records in the store
replies.py    a message into the inbox first, then answered in a task of its own;
              a repeated Idempotency-Key replayed
events.py     …/events: a session's new messages live, from any worker
handoffs.py   /v1/handoffs: people answering through the API (the webhook desk)
protocol.py   JSON bodies in, JSON errors and Server-Sent Events out
asgi.py       all of it as an ASGI app to mount in yours (`asgi_app(bots)`)

Every message is in the store's inbox before the client hears of it; a worker
that dies leaves it there, and another answers it (`WebChannel.resume`), as it
delivers people's messages to web customers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.routing import BaseRoute

from botkit import __version__
from botkit.adapters import ServeOptions
from botkit.adapters.web.answers import AnswersApi
from botkit.adapters.web.api import KeyAccess, SessionsApi
from botkit.adapters.web.asgi import WebApp, asgi_app
from botkit.adapters.web.completions import CompletionsApi
from botkit.adapters.web.events import PING_SECONDS, LiveEvents
from botkit.adapters.web.feedback import FeedbackRoutes
from botkit.adapters.web.openapi import openapi_document
from botkit.adapters.web.overrides import tuned
from botkit.adapters.web.page import ChatPage
from botkit.adapters.web.ratelimit import ClientRateLimit
from botkit.adapters.web.replies import Replies, announce
from botkit.adapters.web.sessions import Sessions
from botkit.app import BotApp
from botkit.errors import DeliveryError
from botkit.messages import IncomingMessage
from botkit.stores.base import InboxItem

__all__ = ["WebApp", "WebChannel", "asgi_app", "build"]

logger = logging.getLogger(__name__)

GRACE_SECONDS = 10.0
"""How long a stop waits for replies under way (including those whose client left)."""


class WebChannel:
    """Serves the bots of a `BotApp` over HTTP, and carries out their web inbox items."""

    def __init__(
        self,
        app: BotApp,
        *,
        rate_window: float = 60.0,
        grace: float = GRACE_SECONDS,
        ping: float = PING_SECONDS,
    ) -> None:
        web = app.settings.web
        self.app = app
        self.replies = Replies(grace=grace, ping=ping)
        self.events = LiveEvents(app.store, ping=ping)
        self.sessions = Sessions(app.store, app.pipelines, handoffs=app.handoffs)
        per_minute = web.public_messages_per_minute

        def limit(name: str) -> ClientRateLimit:
            return ClientRateLimit(app.store, name=name, limit=per_minute, window=rate_window)

        webhook_desk = any(
            bot.settings.handoff is not None and bot.settings.handoff.desk == "webhook"
            for bot in app.bots
        )
        access = KeyAccess(web.keys)
        self.api = SessionsApi(
            pipelines=app.pipelines,
            store=app.store,
            sessions=self.sessions,
            replies=self.replies,
            events=self.events,
            access=access,
            max_message_chars=web.max_message_chars,
            openapi=openapi_document(
                __version__,
                handoffs_api=webhook_desk,
                served=app.bots,
                max_message_chars=web.max_message_chars,
            ),
        )
        self.answers = AnswersApi(
            pipelines=app.pipelines, access=access, max_message_chars=web.max_message_chars
        )
        self.completions = CompletionsApi(
            pipelines=app.pipelines,
            model_of=app.model_of,
            store=app.store,
            access=access,
            max_message_chars=web.max_message_chars,
        )
        self.page = ChatPage(
            pipelines=app.pipelines,
            store=app.store,
            sessions=self.sessions,
            replies=self.replies,
            events=self.events,
            message_limit=limit("message"),
            session_limit=limit("session"),
            max_message_chars=web.max_message_chars,
            enabled=per_minute > 0,
        )
        self.feedback = FeedbackRoutes(
            votes=app.votes,
            sessions=self.sessions,
            store=app.store,
            recorder=app.outcomes,
            access=KeyAccess(web.keys),
            page=per_minute > 0,
        )
        if not web.keys:
            logger.warning("no BOTKIT_WEB_API_KEYS set: every /v1/ request is refused (401)")

    def routes(self) -> Sequence[BaseRoute]:
        return [
            *self.api.routes(),
            *self.answers.routes(),
            *self.completions.routes(),
            *self.page.routes(),
            *self.feedback.routes(),
        ]

    async def run(self) -> None:
        return None

    async def resume(self, item: InboxItem) -> None:
        """A message a dead worker accepted (answered and stored here), or a person's
        message for a web customer (already stored: announced to the session's live
        views, unless the session is gone)."""
        session_id = item.payload["address"]["session"]
        if item.payload["kind"] == "message":
            message = IncomingMessage.from_json(item.payload["message"])
            session = await self.sessions.get(session_id)
            if session is None:
                logger.info("a message of deleted web session %s is not answered", session_id)
                return
            pipeline = tuned(self.app.pipelines[message.bot], session.completion)
            await self.replies.resume(pipeline, message, item)
            return
        if not await self.sessions.exists(session_id):
            raise DeliveryError("the web session was deleted")
        await announce(self.app.store, item.conversation)

    def stopping(self) -> None:
        """A stop has begun: end the live event streams (browsers reconnect elsewhere)."""
        self.events.stop()

    async def aclose(self) -> None:
        self.events.stop()
        await self.replies.aclose()


def build(app: BotApp, options: ServeOptions) -> WebChannel:
    return WebChannel(app)
