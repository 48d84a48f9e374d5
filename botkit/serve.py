"""`botkit serve`: the bots on their channels (and the desks where people answer them),
sharing one store, one LLM client and one HTTP server, until SIGINT or SIGTERM asks for a
graceful stop. SIGHUP reloads the bots' files (`botkit.reloader`); with `reload`, so does
a change to them.

The HTTP server always runs, whatever the channels: `/healthz` (the process is alive),
`/readyz` (the store answers and every channel has started; 503 otherwise) and
`/metrics` (Prometheus). Beside the channels run the inbox worker (work a dead worker
left, messages from people for customers), the handoff timeouts and, for bots with a
`retention`, the hourly deletion of conversations past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from importlib import import_module
from typing import TYPE_CHECKING

from botkit.adapters import CHANNELS, Channel, ChannelFactory, ServeOptions
from botkit.app import BotApp
from botkit.errors import ConfigError, Problem
from botkit.inbox import InboxWorker, Resumes
from botkit.privacy import RetentionPurger
from botkit.reloader import Reloader

if TYPE_CHECKING:
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

logger = logging.getLogger(__name__)

GRACEFUL_SECONDS = 10.0
"""How long in-flight HTTP requests may take to finish once a stop is asked for."""


def load_channel(name: str) -> ChannelFactory:
    """The factory of a channel; a missing extra fails with the pip command that fixes it."""
    if name not in CHANNELS:
        known = ", ".join(sorted(CHANNELS))
        raise ConfigError([Problem("--channel", f"unknown channel {name!r} (known: {known})")])
    module_name, _, factory = CHANNELS[name].partition(":")
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and not err.name.startswith("botkit"):
            message = f"the {name} channel needs {err.name}: pip install 'botkit[{name}]'"
            raise ConfigError([Problem("--channel", message)]) from err
        raise
    build: ChannelFactory = getattr(module, factory)
    return build


def describe(channel: str, app: BotApp, options: ServeOptions, port: int) -> str:
    """The line `botkit serve` prints for a channel at start: where it listens, or how."""
    host = f"[{options.host}]" if ":" in options.host else options.host
    server = f"http://{host}:{port}"
    names = [bot.name for bot in app.bots]
    if channel == "web":
        page = "chat page /" if app.settings.web.public_messages_per_minute else "chat page off"
        return f"web: {server}/ (sessions API /v1/, {page})"
    if channel == "telegram":
        if options.webhook_url is None:
            return f"telegram: {', '.join(names)} by long polling"
        from botkit.adapters.telegram import webhook_urls

        hooks = "; ".join(
            f"{name} at {url}" for name, url in webhook_urls(options.webhook_url, names).items()
        )
        return f"telegram: by webhook, {hooks} (served on {server})"
    if channel == "slack":
        bot = app.settings.slack.bot or names[0]
        if app.settings.slack.app_token is not None:
            return f"slack: {bot} by Socket Mode"
        return f"slack: {bot} by the Events API at {server}/slack/events"
    return f"{channel}: started"


async def serve(app: BotApp, options: ServeOptions, *, reload: bool = False) -> None:
    """Run every channel and desk until a signal arrives, then stop them in reverse order.

    The HTTP server stops taking requests first and finishes the ones under way;
    then each channel's background work is cancelled and its `aclose` lets the
    replies it is still sending finish.
    """
    channels = {name: load_channel(name)(app, options) for name in options.channels}
    parts: list[Channel] = list(channels.values())
    for desk in sorted({b.settings.handoff.desk for b in app.bots if b.settings.handoff}):
        from botkit.desks import load_desk

        part: Channel = load_desk(desk).serve(app, options)
        if all(part is not known for known in parts):  # a Slack desk may share the channel's app
            parts.append(part)
    every_bot = [bot.name for bot in app.bots]
    resumers: dict[str, tuple[Resumes, list[str]]] = {
        name: (channel, getattr(channel, "bots", every_bot))
        for name, channel in channels.items()
        if isinstance(channel, Resumes)
    }
    for kept in app.handoffs.desks:  # a desk that keeps its work in the inbox (webhook)
        if isinstance(kept, Resumes) and isinstance(name := getattr(kept, "inbox", None), str):
            resumers[name] = (kept, getattr(kept, "bots", every_bot))
    inbox = InboxWorker(app.store, resumers, handoffs=app.handoffs)
    reloader = Reloader(app, watch=reload)
    health = Health(app, parts)
    routes = [*health.routes(), *(route for part in parts for route in part.routes())]
    listener = _bind(options)
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        for part in parts:
            stack.push_async_callback(part.aclose)
        stack.push_async_callback(inbox.aclose)
        workers = [asyncio.create_task(part.run()) for part in parts]
        for worker in workers:
            worker.add_done_callback(lambda task: _stop_on_failure(task, stop))
        background = [
            asyncio.create_task(inbox.run()),
            asyncio.create_task(app.handoffs.run()),
            asyncio.create_task(reloader.run()),
            asyncio.create_task(RetentionPurger(app.store, lambda: app.bots).run()),
        ]
        for task in background:
            task.add_done_callback(lambda task: _stop_on_failure(task, stop))
        server = _http_server(app, routes)
        server_task = asyncio.create_task(server.serve(sockets=[listener]))
        server_task.add_done_callback(lambda _: stop.set())
        logger.info("listening on http://%s:%d", options.host, listener.getsockname()[1])
        port = listener.getsockname()[1]
        for name in options.channels:
            print(describe(name, app, options, port), file=sys.stderr, flush=True)
        try:
            with _signals_set(stop, reloader.request):
                await stop.wait()
        finally:  # a signal, a failed channel, or this task cancelled: stop the same way
            logger.info("stopping: letting in-flight replies finish")
            health.stopping = True
            for part in parts:  # streams that never end on their own end now
                if (stopping := getattr(part, "stopping", None)) is not None:
                    stopping()
            server.should_exit = True
            await asyncio.shield(server_task)
            for task in [*workers, *background]:
                task.cancel()
            results = await asyncio.gather(*workers, *background, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result


class Health:
    """`/healthz`, `/readyz` and `/metrics`: what an orchestrator and Prometheus ask."""

    def __init__(self, app: BotApp, parts: Sequence[Channel]) -> None:
        self._app = app
        self._parts = parts
        self.stopping = False

    def routes(self) -> list[BaseRoute]:
        from starlette.routing import Route

        return [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]

    async def healthz(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """Ready when the store answers within a second and every channel has started."""
        from starlette.responses import JSONResponse

        problems = []
        if self.stopping:
            problems.append("stopping")
        try:
            async with asyncio.timeout(1.0):
                await self._app.store.cursor("botkit:readyz")
        except Exception as err:
            problems.append(f"store: {err}")
        problems += [
            f"{type(part).__name__}: starting" for part in self._parts if not _started(part)
        ]
        if problems:
            return JSONResponse(
                {"status": "unavailable", "problems": problems},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        return JSONResponse({"status": "ready"})

    async def metrics(self, request: Request) -> Response:
        from starlette.responses import Response

        from botkit.metrics import CONTENT_TYPE

        return Response(self._app.metrics.render(), media_type=CONTENT_TYPE)


def _started(part: Channel) -> bool:
    """A channel may say it is still connecting with a `ready` attribute."""
    return bool(getattr(part, "ready", True))


def _stop_on_failure(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    # A channel with no background work returns from run() at once: that is not a stop.
    if not task.cancelled() and task.exception() is not None:
        stop.set()


@contextlib.contextmanager
def _signals_set(stop: asyncio.Event, reload: Callable[[], None]) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    handlers = {signal.SIGINT: stop.set, signal.SIGTERM: stop.set}
    if hasattr(signal, "SIGHUP"):  # not on Windows
        handlers[signal.SIGHUP] = reload
    for sig, handler in handlers.items():
        loop.add_signal_handler(sig, handler)
    try:
        yield
    finally:
        for sig in handlers:
            loop.remove_signal_handler(sig)


def _bind(options: ServeOptions) -> socket.socket:
    """Bind before serving, so a taken port is a clear error rather than uvicorn's exit."""
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it, a response uvicorn writes in two parts
    # (head, then body) waits for the client's delayed ACK, 40 ms a request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((options.host, options.port))
    except OSError as err:
        sock.close()
        where = f"{options.host}:{options.port}"
        raise ConfigError([Problem("--port", f"cannot listen on {where}: {err.strerror}")]) from err
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _http_server(app: BotApp, routes: Sequence[BaseRoute]) -> uvicorn.Server:
    from botkit.httpserver import ServerLimits, http_server

    server = app.settings.server
    limits = ServerLimits(
        max_connections=server.max_connections,
        header_timeout=server.header_timeout,
        max_header_bytes=server.max_header_bytes,
    )
    return http_server(routes, limits=limits, graceful=GRACEFUL_SECONDS)
