"""The web channel as an ASGI app of its own, to mount in yours (`asgi_app`): the sessions
API, the OpenAPI document and the chat page, under any path.

    bots = BotApp(settings=settings, bots=[shop])
    support = asgi_app(bots)                     # declared with your routes...
    app = Starlette(routes=[..., Mount("/support", support)], lifespan=lifespan)

    async def lifespan(app):                     # ...served once the BotApp is open
        async with bots, support:
            yield

The channel is built at the first request, from the open `BotApp`; leaving `support`
lets the answers under way finish before the `BotApp` closes its store.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from botkit.adapters.web.protocol import error_response
from botkit.stores.base import InboxItem

if TYPE_CHECKING:
    from botkit.adapters.web import WebChannel
    from botkit.app import BotApp


def asgi_app(bots: BotApp) -> WebApp:
    """botkit's sessions API (`/v1/…`, `/openapi.json`) and chat page (`/`, `/embed.js`,
    `/chat/…`) for the bots of `bots`, as one ASGI app to mount under a path of yours.
    Its keys and limits are `bots.settings.web`'s, as for `botkit serve`."""
    return WebApp(bots)


class WebApp:
    """The web channel of a `BotApp` as an ASGI app; `async with` it inside the `BotApp`'s."""

    def __init__(self, bots: BotApp) -> None:
        self._bots = bots
        self._channel: WebChannel | None = None
        self._app: Starlette | None = None

    @property
    def channel(self) -> WebChannel:
        """The web channel (built on first use: the `BotApp` must be open)."""
        if self._channel is None:
            from botkit.adapters.web import WebChannel

            self._channel = WebChannel(self._bots)
            self._app = Starlette(
                routes=list(self._channel.routes()),
                exception_handlers={HTTPException: _json_http_error},
            )
        return self._channel

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # served on its own: the BotApp is yours to open
            await Starlette()(scope, receive, send)
            return
        self.channel  # noqa: B018 - built now, from the open BotApp
        assert self._app is not None
        await self._app(scope, receive, send)

    async def resume(self, item: InboxItem) -> None:
        """Carry out a web inbox item (for `botkit.inbox.InboxWorker`): a message a dead
        worker accepted, or a person's message for a web customer."""
        await self.channel.resume(item)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def stopping(self) -> None:
        """End the live event streams now (they never end on their own): call it when your
        server begins to stop, before it waits for the requests under way."""
        if self._channel is not None:
            self._channel.stopping()

    async def aclose(self) -> None:
        """End the live event streams and let the answers under way finish (a bounded wait)."""
        if self._channel is not None:
            await self._channel.aclose()


async def _json_http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer in the same JSON shape as every endpoint."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, exc.detail, headers=exc.headers)
