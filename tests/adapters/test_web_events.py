"""`…/events`: a session's messages as Server-Sent Events as they are stored, over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from botkit.adapters.web.events import LiveEvents
from botkit.home import BotDefinition
from botkit.messages import Turn
from botkit.stores import MemoryStore
from tests.adapters.web_testing import WebServer, web_server
from tests.loopback import LoopbackServer

HOURS = "We are open Monday to Friday, 9:00 to 17:00."


@pytest.fixture
async def server(shop: BotDefinition) -> AsyncIterator[WebServer]:
    async with web_server([shop]) as server:
        yield server


@pytest.fixture
async def client(server: WebServer) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client() as client:
        yield client


async def new_session(client: httpx.AsyncClient) -> str:
    session_id: str = (await client.post("/v1/sessions", json={})).json()["session_id"]
    return session_id


async def take(events: AsyncIterator[ServerSentEvent], count: int) -> list[ServerSentEvent]:
    return [await asyncio.wait_for(anext(events), 5) for _ in range(count)]


async def test_messages_arrive_live_with_ids(client: httpx.AsyncClient) -> None:
    session_id = await new_session(client)
    async with aconnect_sse(client, "GET", f"/v1/sessions/{session_id}/events") as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        events = source.aiter_sse()
        reply = await client.post(
            f"/v1/sessions/{session_id}/messages", json={"message": "When are you open?"}
        )
        user, answer = await take(events, 2)
    assert (user.event, user.json()["content"]) == ("user", "When are you open?")
    assert (answer.event, answer.json()["content"]) == ("answer", HOURS)
    assert answer.json()["kind"] == "answer"
    assert answer.json()["in_reply_to"] == reply.json()["message_id"]
    assert user.id and answer.id and user.id != answer.id


async def test_a_reconnect_gets_exactly_what_it_missed(client: httpx.AsyncClient) -> None:
    session_id = await new_session(client)
    url = f"/v1/sessions/{session_id}/events"
    messages = f"/v1/sessions/{session_id}/messages"
    async with aconnect_sse(client, "GET", url) as source:
        events = source.aiter_sse()
        await client.post(messages, json={"message": "When are you open?"})
        seen = await take(events, 2)
    await client.post(messages, json={"message": "How long does shipping take?"})
    await client.post(messages, json={"message": "Can I get a refund?"})
    headers = {"Last-Event-ID": seen[-1].id}
    async with aconnect_sse(client, "GET", url, headers=headers) as source:
        missed = await take(source.aiter_sse(), 4)
    assert [e.json()["content"] for e in missed][::2] == [
        "How long does shipping take?",
        "Can I get a refund?",
    ]
    # From the middle of what was missed: the rest, once.
    async with aconnect_sse(client, "GET", url, headers={"Last-Event-ID": missed[1].id}) as source:
        events = source.aiter_sse()
        rest = await take(events, 2)
        await client.post(messages, json={"message": "hello"})
        new = await take(events, 2)
    assert [e.json()["content"] for e in rest] == [e.json()["content"] for e in missed[2:]]
    assert new[0].json()["content"] == "hello"


async def test_a_state_says_where_its_live_events_begin(client: httpx.AsyncClient) -> None:
    session_id = await new_session(client)
    messages = f"/v1/sessions/{session_id}/messages"
    await client.post(messages, json={"message": "When are you open?"})
    state = (await client.get(f"/v1/sessions/{session_id}")).json()
    await client.post(messages, json={"message": "Can I get a refund?"})
    after = state["last_event_id"]
    url = f"/v1/sessions/{session_id}/events"
    async with aconnect_sse(client, "GET", url, params={"after": after}) as source:
        user, _ = await take(source.aiter_sse(), 2)
    assert user.json()["content"] == "Can I get a refund?"


@pytest.mark.parametrize("last", ["nonsense", "12", "-1:0", "1:x"])
async def test_a_malformed_last_event_id_is_422(client: httpx.AsyncClient, last: str) -> None:
    session_id = await new_session(client)
    response = await client.get(
        f"/v1/sessions/{session_id}/events", headers={"Last-Event-ID": last}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def test_events_need_the_sessions_key(server: WebServer, client: httpx.AsyncClient) -> None:
    session_id = await new_session(client)
    async with server.client(None) as anonymous:
        assert (await anonymous.get(f"/v1/sessions/{session_id}/events")).status_code == 401
    async with server.client("key-two") as other:
        assert (await other.get(f"/v1/sessions/{session_id}/events")).status_code == 404


async def test_the_chat_page_gets_its_events_as_html(server: WebServer) -> None:
    async with server.client(None) as browser:
        state = (await browser.post("/chat/sessions", json={})).json()
        session_id = state["session_id"]
        url = f"/chat/sessions/{session_id}/events"
        after = {"after": state["last_event_id"]}
        async with aconnect_sse(browser, "GET", url, params=after) as source:
            await browser.post(
                f"/chat/sessions/{session_id}/messages", json={"message": "When are you open?"}
            )
            user, answer = await take(source.aiter_sse(), 2)
    assert user.json()["html"] is None  # the customer's own text is shown as text
    assert answer.json()["html"] == f"<p>{HOURS}</p>\n"


async def test_stopping_the_server_ends_the_streams(
    server: WebServer, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = await new_session(client)
    async with aconnect_sse(client, "GET", f"/v1/sessions/{session_id}/events") as source:
        events = source.aiter_sse()
        stopping = asyncio.create_task(server.stop())
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(events), 10)
        await stopping
    # It ended because the worker said so, not because uvicorn's grace ran out.
    assert "graceful shutdown exceeded" not in caplog.text


# ---- pings and sessions that end, on LiveEvents directly ------------------------------------


async def test_a_quiet_stream_is_pinged_and_ends_when_its_session_is_gone() -> None:
    store = MemoryStore()
    live = LiveEvents(store, ping=0.05)
    there = [True]

    async def still_there() -> bool:
        return there[0]

    async def events(request: Request) -> Response:
        return await live.stream(
            request, "c", describe=lambda t: {"c": t.content}, still_there=still_there
        )

    server = LoopbackServer(Starlette(routes=[Route("/events", events)]))
    await server.start()
    lines: list[str] = []
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client,
            client.stream("GET", "/events") as response,
        ):
            async for line in response.aiter_lines():
                lines.append(line)
                if line == ": ping" and lines.count(line) == 2:
                    await store.append("c", [Turn("agent", "Hi", 0.0, 1, name="Anna")])
                    await store.publish("conversation:c")
                if line.startswith("data:"):
                    there[0] = False  # the stream must end at the next ping
    finally:
        await server.stop()
    assert lines[0] == "retry: 1000"
    assert lines[1:3] == [": ping", ": ping"]
    assert lines[3:7] == ["id: 0:1", "event: agent", 'data: {"c":"Hi"}', ""]
    assert lines[7:] == []  # the session was gone at the next ping: no ping, the end
