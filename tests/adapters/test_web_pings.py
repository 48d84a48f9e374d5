"""A streamed reply that is slow to come keeps its connection: a comment line (`: ping`)
every `ping` seconds while nothing else is said (15 s by default), which proxies count
as traffic and SSE clients ignore."""

from __future__ import annotations

import asyncio

import httpx
from httpx_sse import aconnect_sse
from pydantic import SecretStr
from starlette.applications import Starlette

from botkit import BotApp, Settings, StoreSettings
from botkit.adapters.web import WebChannel
from botkit.adapters.web.events import PING_SECONDS
from botkit.home import BotDefinition
from botkit.settings import WebSettings
from tests.adapters.web_testing import KEY, ScriptedResponder
from tests.loopback import LoopbackServer


async def test_a_slow_reply_is_kept_alive_by_comment_lines(shop: BotDefinition) -> None:
    assert PING_SECONDS == 15.0
    settings = Settings(
        store=StoreSettings(url="memory://"), web=WebSettings(api_keys=SecretStr(KEY))
    )
    gate = asyncio.Event()
    async with BotApp(settings=settings, bots=[shop]) as bots:
        bots.pipelines["shop"].responder = ScriptedResponder(["Let me see", "… done."], gate=gate)
        channel = WebChannel(bots, ping=0.05)
        server = LoopbackServer(Starlette(routes=list(channel.routes())))
        await server.start()
        auth = {"Authorization": f"Bearer {KEY}"}
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
                session = (await client.post("/v1/sessions", json={}, headers=auth)).json()
                url = f"/v1/sessions/{session['session_id']}/messages"
                body = {"message": "hi", "stream": True}
                lines: list[str] = []
                async with client.stream("POST", url, json=body, headers=auth) as response:
                    async for line in response.aiter_lines():
                        lines.append(line)
                        if lines.count(": ping") == 3:
                            gate.set()  # the model goes on: the answer ends
                # What an SSE client reads of such a stream: no trace of the pings.
                later = asyncio.Event()
                bots.pipelines["shop"].responder = ScriptedResponder(["a", "b"], gate=later)
                asyncio.get_running_loop().call_later(0.3, later.set)
                again = {"message": "hi again", "stream": True}
                async with aconnect_sse(client, "POST", url, json=again, headers=auth) as source:
                    events = [(event.event, event.data) async for event in source.aiter_sse()]
        finally:
            await channel.aclose()
            await server.stop()
    first = lines.index("event: delta")
    pings = [number for number, line in enumerate(lines) if line == ": ping"]
    assert len(pings) >= 3 and all(number > first for number in pings)  # while it waited
    assert lines[-2].startswith("data: ") and "event: done" in lines
    assert [name for name, _ in events] == ["delta", "delta", "done"]
    assert all("ping" not in data for _, data in events)
