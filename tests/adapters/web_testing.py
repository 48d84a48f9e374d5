"""The web channel on a real uvicorn server on a free port, and fakes to drive it."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.routing import BaseRoute

from botkit.adapters import ServeOptions
from botkit.adapters.web import build
from botkit.app import BotApp
from botkit.handoff import Desk
from botkit.home import BotDefinition
from botkit.llm.base import Completion
from botkit.messages import Usage
from botkit.prompting.composer import Prompt
from botkit.serve import Health, serve
from botkit.settings import Settings
from tests.loopback import free_port

KEY = "key-one"
OTHER_KEY = "key-two"


@dataclass
class WebServer:
    app: BotApp
    url: str
    task: asyncio.Task[None]

    def client(self, key: str | None = KEY, **options: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10, **options)

    async def stop(self) -> None:
        """SIGTERM, as an operator would send it; `serve` stops gracefully."""
        if not self.task.done():
            os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(self.task, 20)


@asynccontextmanager
async def web_server(
    bots: Sequence[BotDefinition],
    *,
    settings: dict[str, Any] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    desks: Mapping[str, Desk] | None = None,
) -> AsyncIterator[WebServer]:
    values = {"store": {"url": "memory://"}, "web": {"api_keys": f"{KEY},{OTHER_KEY}"}}
    for section, fields in (settings or {}).items():
        values[section] = values.get(section, {}) | fields
    port = free_port()
    async with BotApp(
        settings=Settings(**values), bots=bots, transport=transport, desks=desks
    ) as app:
        task = asyncio.create_task(serve(app, ServeOptions(channels=("web",), port=port)))
        server = WebServer(app=app, url=f"http://127.0.0.1:{port}", task=task)
        try:
            await _until_healthy(server)
            yield server
        finally:
            await server.stop()


def served_routes(app: BotApp) -> list[BaseRoute]:
    """The routes `botkit serve --channel web` serves for `app`, gathered as `serve` does:
    the web channel's, each desk's and the health routes."""
    from botkit.desks import load_desk

    options = ServeOptions(channels=("web",))
    parts = [build(app, options)]
    desks = {bot.settings.handoff.desk for bot in app.bots if bot.settings.handoff}
    parts += [load_desk(desk).serve(app, options) for desk in sorted(desks)]
    return [*Health(app, parts).routes(), *(route for part in parts for route in part.routes())]


async def _until_healthy(server: WebServer) -> None:
    async with server.client(None) as client:
        for _ in range(200):
            if server.task.done():
                await server.task  # raises what stopped it
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                await asyncio.sleep(0.02)
    raise AssertionError("the web server did not start")


class ScriptedResponder:
    """Answers with fixed deltas; with a `gate`, waits for it after the first delta."""

    def __init__(
        self,
        deltas: Sequence[str],
        *,
        usage: Usage | None = None,
        gate: asyncio.Event | None = None,
    ) -> None:
        self.deltas = list(deltas)
        self.usage = usage or Usage()
        self.gate = gate
        self.started = asyncio.Event()

    async def complete(self, prompt: Prompt) -> Completion:
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        return Completion(text="".join(self.deltas), usage=self.usage, model="scripted")

    async def stream(self, prompt: Prompt) -> AsyncIterator[str | Completion]:
        self.started.set()
        for number, delta in enumerate(self.deltas):
            yield delta
            if number == 0 and self.gate is not None:
                await self.gate.wait()
        yield Completion(text="".join(self.deltas), usage=self.usage, model="scripted")


class FailingResponder:
    """Every completion fails as an unreachable API would."""

    async def complete(self, prompt: Prompt) -> Completion:
        raise ConnectionError("the API is down")

    async def stream(self, prompt: Prompt) -> AsyncIterator[str | Completion]:
        raise ConnectionError("the API is down")
        yield ""  # pragma: no cover - makes this an async generator
