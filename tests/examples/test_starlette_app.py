"""examples/starlette_app.py: a bot defined in code inside a Starlette app, its lifespan
opening it, a route streaming its answers as the model writes them (a real
OpenAI-speaking server on a socket), and botkit's sessions API and chat page mounted
under /support/."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from httpx_sse import aconnect_sse
from pydantic import SecretStr

from botkit import LLMSettings, Settings, StoreSettings
from botkit.settings import WebSettings
from tests.examples import load_example
from tests.llm.openai_server import OpenAIServer, Streamed
from tests.loopback import LoopbackServer

example = load_example("starlette_app")
KEY = "key-for-crm"
OPEN = "We are open Monday to Friday, 9:00 to 17:00."


@asynccontextmanager
async def serving(llm: OpenAIServer | None = None) -> AsyncIterator[str]:
    """The example's app on a free port (its lifespan run); yields its base URL."""
    settings = Settings(
        store=StoreSettings(url="memory://"), web=WebSettings(api_keys=SecretStr(KEY))
    )
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


async def test_the_sessions_api_is_mounted_under_support() -> None:
    async with serving() as url, httpx.AsyncClient(base_url=f"{url}/support") as client:
        auth = {"Authorization": f"Bearer {KEY}"}
        created = await client.post("/v1/sessions", json={}, headers=auth)
        assert created.status_code == 201
        session = created.json()["session_id"]
        path = f"/v1/sessions/{session}/messages"
        body = {"message": "When are you open?", "stream": True}
        async with aconnect_sse(client, "POST", path, json=body, headers=auth) as source:
            events = [(event.event, event.json()) async for event in source.aiter_sse()]
        read = await client.get(f"/v1/sessions/{session}", headers=auth)
        refused = await client.post("/v1/sessions", json={})
        unknown = await client.get("/v1/nothing-here", headers=auth)
    assert events[-1][0] == "done" and events[-1][1]["reply"] == OPEN
    assert "".join(data["delta"] for name, data in events if name == "delta") == OPEN
    assert [m["content"] for m in read.json()["messages"]] == ["When are you open?", OPEN]
    assert refused.status_code == 401
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


async def test_the_chat_page_is_mounted_under_support() -> None:
    async with serving() as url, httpx.AsyncClient(base_url=url) as client:
        bare = await client.get("/support")
        page = await client.get("/support/")
        script = await client.get("/support/chat/static/chat.js")
        created = await client.post("/support/chat/sessions", json={})
        session = created.json()["session_id"]
        answer = await client.post(
            f"/support/chat/sessions/{session}/messages", json={"message": "opening hours"}
        )
        own = await client.post("/chat", json={"user": "ann", "message": "opening hours"})
    assert bare.status_code in (307, 308) and bare.headers["location"].endswith("/support/")
    assert page.status_code == 200 and 'src="chat/static/chat.js"' in page.text
    assert script.status_code == 200
    assert created.status_code == 201 and answer.json()["reply"] == OPEN
    assert own.text == OPEN  # the app's own route, beside the mount
