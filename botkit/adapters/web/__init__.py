"""The web channel: the sessions API, the OpenAPI document and the chat page.

api.py        /v1/ sessions and models (API keys), /openapi.json
page.py       the chat page at /, /embed.js, and its public sessions under /chat/
sessions.py   session records in the store; replies run as tasks of their own
protocol.py   JSON bodies in, JSON errors and Server-Sent Events out
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.routing import BaseRoute

from botkit import __version__
from botkit.adapters import ServeOptions
from botkit.adapters.web.api import KeyAccess, SessionsApi
from botkit.adapters.web.openapi import openapi_document
from botkit.adapters.web.page import ChatPage
from botkit.adapters.web.ratelimit import ClientRateLimit
from botkit.adapters.web.sessions import Replies, Sessions
from botkit.app import BotApp

logger = logging.getLogger(__name__)

GRACE_SECONDS = 10.0
"""How long a stop waits for replies under way (including those whose client left)."""


class WebChannel:
    """Serves the bots of a `BotApp` over HTTP; it has no background work of its own."""

    def __init__(
        self, app: BotApp, *, rate_window: float = 60.0, grace: float = GRACE_SECONDS
    ) -> None:
        web = app.settings.web
        self.app = app
        self.replies = Replies(grace=grace)
        sessions = Sessions(app.store, app.pipelines)
        per_minute = web.public_messages_per_minute

        def limit(name: str) -> ClientRateLimit:
            return ClientRateLimit(app.store, name=name, limit=per_minute, window=rate_window)

        self.api = SessionsApi(
            pipelines=app.pipelines,
            models={bot.name: app.model_of(bot) for bot in app.bots},
            store=app.store,
            sessions=sessions,
            replies=self.replies,
            access=KeyAccess(web.keys),
            max_message_chars=web.max_message_chars,
            openapi=openapi_document(__version__),
        )
        self.page = ChatPage(
            pipelines=app.pipelines,
            store=app.store,
            sessions=sessions,
            replies=self.replies,
            message_limit=limit("message"),
            session_limit=limit("session"),
            max_message_chars=web.max_message_chars,
            enabled=per_minute > 0,
        )
        if not web.keys:
            logger.warning("no BOTKIT_WEB_API_KEYS set: every /v1/ request is refused (401)")

    def routes(self) -> Sequence[BaseRoute]:
        return [*self.api.routes(), *self.page.routes()]

    async def run(self) -> None:
        return None

    async def aclose(self) -> None:
        await self.replies.aclose()


def build(app: BotApp, options: ServeOptions) -> WebChannel:
    return WebChannel(app)
