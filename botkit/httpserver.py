"""The HTTP server under every channel of `botkit serve`: uvicorn (httptools), with limits
on what one client can hold, and JSON for every failure.

    a connection over `max_connections`        503 `unavailable`, closed at once
    headers not complete in `header_timeout`   closed (counted from connecting, or from
                                               a kept-alive request's first byte)
    headers over `max_header_bytes`            431 `headers_too_large`, closed; no more
                                               than that is ever buffered
    an exception no endpoint answered          500 `internal` (logged), the connection kept
    a request on a kept-alive connection       503 `unavailable` with Retry-After and
    while the server stops                     Connection: close
    bytes that are not HTTP                    400 `invalid_http`, closed

uvicorn's own `limit_concurrency` counts only connections that completed their headers,
and answers in plain text; httptools buffers a header of any size. So the limits are
kept here, in a subclass of uvicorn's httptools protocol that sees every byte.

Routes that share a path are served as one route, so a wrong method's 405 lists every
method the path allows in `Allow`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from botkit.errors import StoreError

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

RETRY_AFTER = "5"
STOP_LINGER = 1.0
"""While stopping, idle kept-alive connections stay open this long at least (and while
requests are still under way), to answer what arrives on them with a 503."""


REFUSED_LINGER = 1.0
"""How long a refused connection's further bytes are read and dropped before it closes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerLimits:
    max_connections: int = 1000
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024


def error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message}})


def raw_response(status: int, reason: str, body: bytes, *, retry_after: bool = False) -> bytes:
    """A whole HTTP/1.1 response, for a connection the application never sees."""
    head = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after:
        head.append(f"retry-after: {RETRY_AFTER}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


STOPPING = error_body("unavailable", "the server is shutting down; try again shortly")


async def _stopping(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer to a request that arrives on a kept-alive connection during a stop."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(STOPPING)).encode()),
        (b"retry-after", RETRY_AFTER.encode()),
        (b"connection", b"close"),  # uvicorn then closes the connection after it
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": STOPPING})


class LimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with botkit's connection and header limits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits: ServerLimits = getattr(self.config, "limits", ServerLimits())
        self._reading_headers = True
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._stop_began: float | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        over = len(self.connections) >= self._limits.max_connections
        super().connection_made(transport)
        if over:
            logger.warning(
                "more than %d connections at once: refusing one (BOTKIT_SERVER_MAX_CONNECTIONS)",
                self._limits.max_connections,
            )
            body = error_body("unavailable", "too many connections; try again shortly")
            self._refuse(raw_response(503, "Service Unavailable", body, retry_after=True))
            return
        self._start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._reading_headers:
            super().data_received(data)
            return
        room = self._limits.max_header_bytes - self._header_bytes
        head = data[:room] if len(data) > room else data
        self._header_bytes += len(head)
        super().data_received(head)
        if len(head) == len(data) or self.transport.is_closing():
            return
        if self.reading_headers:  # the parser saw no end of the headers in what it could take
            limit = self._limits.max_header_bytes
            body = error_body(
                "headers_too_large", f"the request line and headers exceed {limit} bytes"
            )
            self._refuse(raw_response(431, "Request Header Fields Too Large", body))
            return
        self.data_received(data[len(head) :])  # the body, or a pipelined request

    @property
    def reading_headers(self) -> bool:
        """Between requests or within a request's head: what arrives counts as headers."""
        return self._reading_headers

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0
        self._start_header_timer()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._cancel_header_timer()
        super().on_headers_complete()
        if self._stop_began is not None and self.cycle is not None:
            self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_headers = True
        self._header_bytes = 0

    def shutdown(self) -> None:
        """A stop began: a busy connection closes after its response (uvicorn's way); an
        idle one stays a moment, answering 503 to what arrives, then closes."""
        if self.cycle is not None and not self.cycle.response_complete:
            super().shutdown()
            return
        self._stop_began = time.monotonic()
        self.app = _stopping
        self._unset_keepalive_if_required()
        self._linger()

    def _linger(self) -> None:
        if self.transport.is_closing():
            return
        assert self._stop_began is not None
        busy = self.cycle is not None and not self.cycle.response_complete
        others = any(not task.done() for task in self.tasks)
        if not busy and not others and time.monotonic() - self._stop_began >= STOP_LINGER:
            self.transport.close()
            return
        self.loop.call_later(0.1, self._linger)

    def send_400_response(self, msg: str) -> None:
        """A request the parser cannot read: JSON like every other answer (uvicorn's is
        plain text), and the connection closed, as it cannot tell where the next begins."""
        body = error_body("invalid_http", f"{msg.rstrip('.')}: not a valid HTTP/1.1 request")
        self._refuse(raw_response(400, "Bad Request", body))

    def _refuse(self, response: bytes) -> None:
        """Answer and close, reading (and dropping) what the client still sends for a moment:
        closing with unread data would reset the connection, and the client lose the answer."""
        self._cancel_header_timer()
        self._refused = True
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(REFUSED_LINGER, self.transport.close)

    def _start_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self._limits.header_timeout, self._too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self._reading_headers and not self.transport.is_closing():
            logger.info("closed a connection that sent no complete headers in time")
            self.transport.close()


class JsonErrors:
    """An exception that no endpoint answered becomes a JSON 500 (a store failure, a 503
    with Retry-After), logged once, and the connection stays usable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as err:
            where = f"{scope.get('method')} {scope.get('path')}"
            if isinstance(err, StoreError):
                logger.warning("%s: the store failed: %s", where, err)
                status, body = 503, error_body("unavailable", "the store cannot be reached")
            else:
                logger.exception("%s failed", where)
                body = error_body("internal", "the server failed to answer; it is logged")
                status = 500
            if started:  # the head is gone: end the body, so the connection stays in step
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            if status == 503:
                headers.append((b"retry-after", RETRY_AFTER.encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})


class _ByMethod:
    """One path's routes as one ASGI app, choosing by method."""

    def __init__(self, apps: dict[str, ASGIApp]) -> None:
        self._apps = apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._apps[scope["method"]](scope, receive, send)


def merged(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """The routes, those sharing a path joined into one (at the first one's place), so a
    405 names every method the path allows."""
    from starlette.routing import Route

    by_path: dict[str, list[Route]] = {}
    for route in routes:
        if isinstance(route, Route):
            by_path.setdefault(route.path, []).append(route)
    joined: list[BaseRoute] = []
    for route in routes:
        if not isinstance(route, Route) or len(by_path[route.path]) == 1:
            joined.append(route)
            continue
        same = by_path[route.path]
        if route is not same[0]:
            continue
        apps = {method: r.app for r in same for method in r.methods or ()}
        joined.append(Route(route.path, _ByMethod(apps), methods=sorted(apps), name=route.name))
    return joined


class _Config(uvicorn.Config):
    """uvicorn's settings, carrying botkit's limits to each connection's protocol."""

    limits: ServerLimits


class Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # botkit stops every channel on a signal, not only the HTTP server.
        yield


def http_server(
    routes: Sequence[BaseRoute], *, limits: ServerLimits, graceful: float
) -> uvicorn.Server:
    """The server for `routes`, to run with `serve(sockets=[…])`."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware

    app = Starlette(
        routes=merged(routes),
        exception_handlers={HTTPException: _json_http_error},
        middleware=[Middleware(JsonErrors)],
    )
    config = _Config(
        app,
        http=LimitedProtocol,
        lifespan="off",
        log_level="warning",
        # uvicorn's own handlers would bypass the root's, and with them the CLI's
        # secret redactor: its records go to the root like every other library's.
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(graceful),
    )
    config.limits = limits
    return Server(config)


async def _json_http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer in the same JSON shape as every botkit endpoint."""
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse

    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": {"code": code, "message": exc.detail}},
        status_code=exc.status_code,
        headers=exc.headers,
    )
