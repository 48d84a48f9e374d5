"""`botkit serve`: the bots on their channels, sharing one store, one LLM client and one
HTTP server, until SIGINT or SIGTERM asks for a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from importlib import import_module
from typing import TYPE_CHECKING

from botkit.adapters import CHANNELS, Channel, ChannelFactory, ServeOptions
from botkit.app import BotApp
from botkit.errors import ConfigError, Problem

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


async def serve(app: BotApp, options: ServeOptions) -> None:
    """Run every channel until a signal arrives, then stop them in reverse order.

    The HTTP server stops taking requests first and finishes the ones under way;
    then each channel's background work is cancelled and its `aclose` lets the
    replies it is still sending finish.
    """
    channels: list[Channel] = [load_channel(name)(app, options) for name in options.channels]
    routes = [route for channel in channels for route in channel.routes()]
    listener = _bind(options) if routes else None
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        for channel in channels:
            stack.push_async_callback(channel.aclose)
        workers = [asyncio.create_task(channel.run()) for channel in channels]
        for worker in workers:
            worker.add_done_callback(lambda task: _stop_on_failure(task, stop))
        server = None
        if listener is not None:
            server = _http_server(routes, options)
            server_task = asyncio.create_task(server.serve(sockets=[listener]))
            server_task.add_done_callback(lambda _: stop.set())
            logger.info("listening on http://%s:%d", options.host, listener.getsockname()[1])
        port = options.port if listener is None else listener.getsockname()[1]
        for name in options.channels:
            print(describe(name, app, options, port), file=sys.stderr, flush=True)
        try:
            with _signals_set(stop):
                await stop.wait()
        finally:  # a signal, a failed channel, or this task cancelled: stop the same way
            logger.info("stopping: letting in-flight replies finish")
            if server is not None:
                server.should_exit = True
                await asyncio.shield(server_task)
            for worker in workers:
                worker.cancel()
            results = await asyncio.gather(*workers, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result


def _stop_on_failure(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    # A channel with no background work returns from run() at once: that is not a stop.
    if not task.cancelled() and task.exception() is not None:
        stop.set()


@contextlib.contextmanager
def _signals_set(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def _bind(options: ServeOptions) -> socket.socket:
    """Bind before serving, so a taken port is a clear error rather than uvicorn's exit."""
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((options.host, options.port))
    except OSError as err:
        sock.close()
        where = f"{options.host}:{options.port}"
        raise ConfigError([Problem("--port", f"cannot listen on {where}: {err.strerror}")]) from err
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _http_server(routes: Sequence[BaseRoute], options: ServeOptions) -> uvicorn.Server:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # botkit stops every channel on a signal, not only the HTTP server.
            yield

    config = uvicorn.Config(
        Starlette(
            routes=list(routes),
            exception_handlers={HTTPException: _json_http_error},
        ),
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(GRACEFUL_SECONDS),
    )
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
