"""The chat page's public sessions, its assets, rate limits, graceful stops and the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from botkit.adapters.web.protocol import ApiError
from botkit.adapters.web.ratelimit import ClientRateLimit
from botkit.adapters.web.replies import Replies
from botkit.adapters.web.sessions import PUBLIC, Session
from botkit.home import BotDefinition
from botkit.llm.offline import FaqResponder
from botkit.pipeline import Pipeline
from botkit.stores import MemoryStore
from tests.adapters.web_testing import KEY, ScriptedResponder, WebServer, free_port, web_server

XSS = "Look: <img src=x onerror=alert(1)> and <script>alert(2)</script> **bold**"


@pytest.fixture
async def server(shop: BotDefinition) -> Any:
    async with web_server([shop], settings={"web": {"public_messages_per_minute": 3}}) as server:
        yield server


@pytest.fixture
async def browser(server: WebServer) -> Any:
    """A client with no API key, like the chat page."""
    async with server.client(None) as client:
        yield client


async def public_session(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/chat/sessions", json={})
    assert response.status_code == 201, response.text
    state: dict[str, Any] = response.json()
    return state


# ---- public sessions ------------------------------------------------------------------------


async def test_a_page_session_starts_with_the_welcome(browser: httpx.AsyncClient) -> None:
    state = await public_session(browser)
    assert state["bot"] == "shop" and state["title"] == "A test bot"
    assert state["welcome_html"].startswith("<p>Hi! I'm the shop assistant.")
    assert state["messages"] == []
    again = (await browser.get(f"/chat/sessions/{state['session_id']}")).json()
    assert again == state


async def test_page_replies_stream_and_render_markdown_without_html(
    server: WebServer, browser: httpx.AsyncClient
) -> None:
    server.app.pipelines["shop"].responder = ScriptedResponder([XSS[:10], XSS[10:]])
    session_id = (await public_session(browser))["session_id"]
    url = f"/chat/sessions/{session_id}/messages"
    body = {"message": "<b>hi</b>", "stream": True}
    async with aconnect_sse(browser, "POST", url, json=body) as source:
        events = [(event.event, event.json()) async for event in source.aiter_sse()]
    assert [e for e, _ in events] == ["delta", "delta", "done"]
    done = events[-1][1]
    assert done["reply"] == XSS
    html = done["html"]
    assert "<img" not in html and "<script" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<strong>bold</strong>" in html

    messages = (await browser.get(f"/chat/sessions/{session_id}")).json()["messages"]
    assert [(m["role"], m["content"], m["html"]) for m in messages] == [
        ("user", "<b>hi</b>", None),
        ("assistant", XSS, html),
    ]


async def test_markdown_links_to_scripts_and_images_are_not_rendered(
    server: WebServer, browser: httpx.AsyncClient
) -> None:
    text = (
        "[click](javascript:alert(1)) ![pic](http://tracker.example/p.png) [ok](https://a.example)"
    )
    server.app.pipelines["shop"].responder = ScriptedResponder([text])
    session_id = (await public_session(browser))["session_id"]
    reply = await browser.post(f"/chat/sessions/{session_id}/messages", json={"message": "hi"})
    html = reply.json()["html"]
    assert "javascript:" not in html.replace("[click](javascript:", "")
    assert "<img" not in html and 'href="https://a.example"' in html


async def test_page_and_api_sessions_never_cross(
    server: WebServer, browser: httpx.AsyncClient
) -> None:
    page_session = (await public_session(browser))["session_id"]
    async with server.client(KEY) as api:
        api_session = (await api.post("/v1/sessions", json={})).json()["session_id"]
        assert (await api.get(f"/v1/sessions/{page_session}")).status_code == 404
    assert (await browser.get(f"/chat/sessions/{api_session}")).status_code == 404
    posted = await browser.post(f"/chat/sessions/{api_session}/messages", json={"message": "hi"})
    assert posted.status_code == 404


async def test_a_page_session_can_be_deleted(browser: httpx.AsyncClient) -> None:
    session_id = (await public_session(browser))["session_id"]
    assert (await browser.delete(f"/chat/sessions/{session_id}")).status_code == 204
    assert (await browser.get(f"/chat/sessions/{session_id}")).json()["error"][
        "code"
    ] == "not_found"


async def test_page_messages_are_limited_per_client_address(
    server: WebServer, browser: httpx.AsyncClient
) -> None:
    session_id = (await public_session(browser))["session_id"]
    url = f"/chat/sessions/{session_id}/messages"
    for _ in range(3):
        assert (await browser.post(url, json={"message": "hi"})).status_code == 200
    limited = await browser.post(url, json={"message": "hi"})
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # Refused messages are not stored.
    messages = (await browser.get(f"/chat/sessions/{session_id}")).json()["messages"]
    assert len(messages) == 6

    # Another address has its own allowance (the whole 127/8 is loopback on Linux).
    elsewhere = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=server.url, transport=elsewhere) as neighbour:
        assert (await neighbour.post(url, json={"message": "hi"})).status_code == 200

    # The keyed API is not limited by the page's allowance.
    async with server.client(KEY) as api:
        api_session = (await api.post("/v1/sessions", json={})).json()["session_id"]
        for _ in range(4):
            reply = await api.post(f"/v1/sessions/{api_session}/messages", json={"message": "hi"})
            assert reply.status_code == 200


async def test_the_page_can_be_turned_off(shop: BotDefinition) -> None:
    settings = {"web": {"public_messages_per_minute": 0}}
    async with web_server([shop], settings=settings) as server, server.client(None) as client:
        response = await client.post("/chat/sessions", json={})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "chat_page_off"


@pytest.mark.parametrize(
    ("content", "status"),
    [(b"{", 422), (b"[]", 422), (b'{"bot": 1}', 422), (b'{"bot": "bakery"}', 422)],
)
async def test_bad_page_requests_are_4xx(
    browser: httpx.AsyncClient, content: bytes, status: int
) -> None:
    response = await browser.post("/chat/sessions", content=content)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message"}


async def test_rate_limits_are_per_client_with_a_burst_then_a_steady_rate() -> None:
    limit = ClientRateLimit(MemoryStore(), name="t", limit=2, window=60)
    await limit.admit("a")
    await limit.admit("a")
    with pytest.raises(ApiError) as refused:
        await limit.admit("a")
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "30"
    with pytest.raises(ApiError):  # refused from memory: no store write
        await limit.admit("a")
    await limit.admit("b")


async def test_a_thousand_refusals_cost_one_stored_number_per_client() -> None:
    store = MemoryStore()
    limit = ClientRateLimit(store, name="t", limit=5, window=60)
    for _ in range(1000):
        with contextlib.suppress(ApiError):
            await limit.admit("flood")
    assert list(store._rates) == ["web:rate:t:flood"]


# ---- the page and its assets ------------------------------------------------------------------


async def test_the_page_is_self_contained(browser: httpx.AsyncClient) -> None:
    page = await browser.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    html = page.text
    assert '<label for="message"' in html and 'aria-live="polite"' in html
    assert 'name="viewport"' in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and not [a for a in assets if "//" in a]  # nothing from elsewhere
    for asset in assets:
        assert (await browser.get(asset)).status_code == 200
    script = (await browser.get("chat/static/chat.js")).text
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script


async def test_the_embed_snippet_is_served(browser: httpx.AsyncClient) -> None:
    response = await browser.get("/embed.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "iframe" in response.text and "innerHTML" not in response.text


# ---- stopping ------------------------------------------------------------------------


async def test_a_reply_under_way_finishes_when_the_server_stops(shop: BotDefinition) -> None:
    gate = asyncio.Event()
    async with web_server([shop]) as server, server.client(KEY) as client:
        responder = ScriptedResponder(["slow ", "answer"], gate=gate)
        server.app.pipelines["shop"].responder = responder
        session_id = (await client.post("/v1/sessions", json={})).json()["session_id"]
        url = f"/v1/sessions/{session_id}/messages"
        pending = asyncio.create_task(client.post(url, json={"message": "hi"}))
        await asyncio.wait_for(responder.started.wait(), 5)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.2)
        assert not server.task.done()
        gate.set()
        reply = await asyncio.wait_for(pending, 10)
        await asyncio.wait_for(server.task, 10)
    assert reply.status_code == 200 and reply.json()["reply"] == "slow answer"


async def test_a_closing_channel_refuses_new_replies(shop: BotDefinition) -> None:
    store = MemoryStore()
    pipeline = Pipeline(bot=shop, store=store, responder=FaqResponder(shop))
    replies = Replies(grace=1)
    await replies.aclose()
    session = Session(id="s", bot="shop", owner=PUBLIC, user="u", created=datetime.now(UTC))
    with pytest.raises(ApiError) as refused:
        await replies.respond(
            pipeline, session, session.message("hi"), stream=False, describe=lambda r: {}
        )
    assert refused.value.status == 503 and refused.value.headers["Retry-After"]
    assert await store.inbox_take(["web/shop"]) == []  # nothing was accepted


# ---- the command line -------------------------------------------------------------------


def test_botkit_serve_web_from_the_command_line(home: Path) -> None:
    port = free_port()
    env = os.environ | {
        "BOTKIT_HOME": str(home),
        "BOTKIT_WEB_API_KEYS": "cli-key",
        "BOTKIT_STORE_URL": "memory://",
    }
    command = [sys.executable, "-m", "botkit", "serve", "shop", "--channel", "web"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        headers = {"Authorization": "Bearer cli-key"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            for _ in range(300):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    assert process.poll() is None, process.communicate()
                    time.sleep(0.05)
            session_id = client.post("/v1/sessions", json={"bot": "shop"}).json()["session_id"]
            reply = client.post(
                f"/v1/sessions/{session_id}/messages", json={"message": "When are you open?"}
            )
        assert reply.json()["reply"] == "We are open Monday to Friday, 9:00 to 17:00."
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
