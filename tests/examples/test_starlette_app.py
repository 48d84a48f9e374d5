"""examples/starlette_app.py: a bot defined in code inside a Starlette app, its lifespan
opening it, and a route streaming its answers as the model writes them (a real
OpenAI-speaking server on a socket)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from pydantic import SecretStr

from botkit import LLMSettings, Settings, StoreSettings
from tests.examples import load_example
from tests.llm.openai_server import OpenAIServer, Streamed
from tests.loopback import LoopbackServer

example = load_example("starlette_app")


@asynccontextmanager
async def serving(llm: OpenAIServer | None = None) -> AsyncIterator[str]:
    """The example's app on a free port (its lifespan run); yields its base URL."""
    settings = Settings(store=StoreSettings(url="memory://"))
    if llm is not None:
        settings.llm = LLMSettings(base_url=llm.base_url, api_key=SecretStr("sk-test"))
    server = LoopbackServer(example.build_app(settings), lifespan="on")
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


async def test_the_answer_streams_as_the_model_writes_it() -> None:
    llm = OpenAIServer()
    await llm.start()
    written = asyncio.Event()
    llm.then(Streamed(["We are open ", "Monday to Friday."], hold=written))
    try:
        async with serving(llm) as url, httpx.AsyncClient() as client:
            body = {"user": "ann", "message": "When are you open?"}
            async with client.stream("POST", f"{url}/chat", json=body) as response:
                assert response.headers["content-type"].startswith("text/plain")
                chunks = response.aiter_text()
                first = await anext(chunks)  # while the model has not written the rest
                assert first == "We are open "
                written.set()
                rest = "".join([chunk async for chunk in chunks])
    finally:
        await llm.stop()
    assert first + rest == "We are open Monday to Friday."
    system = llm.received[0].body["messages"][0]["content"]
    assert "When are you open? We are open Monday to Friday, 9:00 to 17:00." in system


async def test_offline_it_answers_from_its_faq_and_refuses_a_body_without_a_user() -> None:
    async with serving() as url, httpx.AsyncClient() as client:
        first = await client.post(f"{url}/chat", json={"user": "ann", "message": "opening hours"})
        again = await client.post(f"{url}/chat", json={"user": "ann", "message": "/reset"})
        wrong = await client.post(f"{url}/chat", json={"message": "no user"})
    assert first.text == "We are open Monday to Friday, 9:00 to 17:00."
    assert "forgotten our conversation" in again.text  # commands work as on any channel
    assert wrong.status_code == 422
