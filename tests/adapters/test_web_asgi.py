"""`botkit.adapters.web.asgi_app`: the web channel mounted in an app of the user's own, its
lifecycle the user's lifespan; `stopping()` ends the live event streams, which never end
on their own, so the user's server can stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Mount

from botkit import BotApp, Settings, StoreSettings
from botkit.adapters import web
from botkit.home import BotDefinition
from botkit.settings import WebSettings
from tests.adapters.web_testing import KEY
from tests.loopback import LoopbackServer


async def test_stopping_ends_the_live_event_streams(shop: BotDefinition) -> None:
    settings = Settings(
        store=StoreSettings(url="memory://"), web=WebSettings(api_keys=SecretStr(KEY))
    )
    bots = BotApp(settings=settings, bots=[shop])
    support = web.asgi_app(bots)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with bots, support:
            yield

    server = LoopbackServer(
        Starlette(routes=[Mount("/support", support)], lifespan=lifespan), lifespan="on"
    )
    await server.start()
    auth = {"Authorization": f"Bearer {KEY}"}
    base = f"http://127.0.0.1:{server.port}/support"
    try:
        async with httpx.AsyncClient(base_url=base, headers=auth) as client:
            session = (await client.post("/v1/sessions", json={})).json()["session_id"]
            async with client.stream("GET", f"/v1/sessions/{session}/events") as events:
                assert events.status_code == 200
                lines = events.aiter_lines()
                assert (await anext(lines)).startswith("retry:")
                support.stopping()
                rest = await asyncio.wait_for(_drain(lines), 5)  # it ends: no timeout
    finally:
        await server.stop()
    assert rest == []


async def _drain(lines: AsyncIterator[str]) -> list[str]:
    return [line async for line in lines if line]
