"""The web channel's sessions API over real HTTP: every endpoint and every error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from openapi_spec_validator import validate
from starlette.routing import Route

from botkit.adapters.web.replies import FAILED
from botkit.app import BotApp
from botkit.errors import StoreError
from botkit.home import BotDefinition, BotHome
from botkit.messages import Turn, Usage, conversation_key
from botkit.settings import Settings
from botkit.stores import MemoryStore
from botkit.testing import FakeLLM, write_bot
from tests.adapters.web_testing import (
    KEY,
    OTHER_KEY,
    FailingResponder,
    ScriptedResponder,
    WebServer,
    served_routes,
    web_server,
)

HOURS = "We are open Monday to Friday, 9:00 to 17:00."


async def new_session(client: httpx.AsyncClient, **body: Any) -> str:
    response = await client.post("/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    session_id: str = response.json()["session_id"]
    return session_id


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, str] = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


@pytest.fixture
async def server(shop: BotDefinition) -> Any:
    async with web_server([shop]) as server:
        yield server


@pytest.fixture
async def client(server: WebServer) -> Any:
    async with server.client() as client:
        yield client


# ---- sessions and messages ----------------------------------------------------------


async def test_a_session_answers_from_the_faq_and_keeps_its_history(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(
        "/v1/sessions", json={"bot": "shop", "user": "u-7", "metadata": {"plan": "pro"}}
    )
    assert created.status_code == 201
    body = created.json()
    assert body["bot"] == "shop" and body["created"].endswith("Z")
    session_id = body["session_id"]
    assert len(session_id) >= 32

    answer = await client.post(
        f"/v1/sessions/{session_id}/messages", json={"message": "When are you open?"}
    )
    assert answer.status_code == 200
    reply = answer.json()
    assert reply["reply"] == HOURS
    assert reply["finish_reason"] == "stop" and reply["message_id"].startswith("msg_")
    assert reply["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}

    state = (await client.get(f"/v1/sessions/{session_id}")).json()
    assert state["user"] == "u-7" and state["metadata"] == {"plan": "pro"}
    assert [(m["role"], m["content"]) for m in state["messages"]] == [
        ("user", "When are you open?"),
        ("assistant", HOURS),
    ]
    assert all(m["time"].endswith("Z") for m in state["messages"])


async def test_bot_may_be_omitted_when_one_bot_is_served(client: httpx.AsyncClient) -> None:
    first, second = await new_session(client), await new_session(client)
    assert first != second
    state = (await client.get(f"/v1/sessions/{first}")).json()
    assert state["bot"] == "shop" and state["messages"] == []


async def test_usage_reports_the_tokens_the_llm_spent(shop: BotDefinition) -> None:
    llm = FakeLLM("Hello from the model.")
    settings = {"llm": {"api_key": "sk-test", "base_url": "http://llm.invalid/v1"}}
    served = web_server([shop], settings=settings, transport=llm.transport)
    async with served as server, server.client() as client:
        session_id = await new_session(client)
        reply = await client.post(f"/v1/sessions/{session_id}/messages", json={"message": "hi"})
    assert reply.json()["reply"] == "Hello from the model."
    assert reply.json()["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
    }


async def test_a_deleted_session_is_gone_with_its_conversation(
    server: WebServer, client: httpx.AsyncClient
) -> None:
    session_id = await new_session(client)
    await client.post(f"/v1/sessions/{session_id}/messages", json={"message": "hello"})
    key = conversation_key("shop", "web", session_id)
    assert await server.app.store.recent(key, 10)

    assert (await client.delete(f"/v1/sessions/{session_id}")).status_code == 204
    assert await server.app.store.recent(key, 10) == []
    assert await server.app.store.get_record(f"web:session:{session_id}") is None
    assert_error(await client.get(f"/v1/sessions/{session_id}"), 404, "not_found")
    assert_error(await client.delete(f"/v1/sessions/{session_id}"), 404, "not_found")
    posted = await client.post(f"/v1/sessions/{session_id}/messages", json={"message": "hi"})
    assert_error(posted, 404, "not_found")


async def test_commands_work_through_the_api(client: httpx.AsyncClient) -> None:
    session_id = await new_session(client)
    await client.post(f"/v1/sessions/{session_id}/messages", json={"message": "hello"})
    reply = await client.post(f"/v1/sessions/{session_id}/messages", json={"message": "/reset"})
    assert reply.json()["kind"] == "command"
    assert (await client.get(f"/v1/sessions/{session_id}")).json()["messages"] == []


# ---- streaming ------------------------------------------------------------------------


@pytest.mark.parametrize("ask", ["body", "accept"])
async def test_a_reply_streams_as_server_sent_events(
    server: WebServer, client: httpx.AsyncClient, ask: str
) -> None:
    server.app.pipelines["shop"].responder = ScriptedResponder(
        ["Hel", "lo ", "there"], usage=Usage(3, 4)
    )
    session_id = await new_session(client)
    body: dict[str, Any] = {"message": "hi"}
    headers = {}
    if ask == "body":
        body["stream"] = True
    else:
        headers["Accept"] = "text/event-stream"
    url = f"/v1/sessions/{session_id}/messages"
    async with aconnect_sse(client, "POST", url, json=body, headers=headers) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        events = [(event.event, event.json()) async for event in source.aiter_sse()]
    assert [e for e, _ in events] == ["delta", "delta", "delta", "done"]
    assert [data["delta"] for _, data in events[:3]] == ["Hel", "lo ", "there"]
    done = events[-1][1]
    assert done["reply"] == "Hello there" and done["finish_reason"] == "stop"
    assert done["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    stored = (await client.get(f"/v1/sessions/{session_id}")).json()["messages"]
    assert [m["content"] for m in stored] == ["hi", "Hello there"]


async def test_a_client_leaving_mid_stream_loses_no_reply(
    server: WebServer, client: httpx.AsyncClient
) -> None:
    gate = asyncio.Event()
    server.app.pipelines["shop"].responder = ScriptedResponder(
        ["first half, ", "second half"], gate=gate
    )
    session_id = await new_session(client)
    url = f"/v1/sessions/{session_id}/messages"
    async with aconnect_sse(client, "POST", url, json={"message": "hi", "stream": True}) as source:
        async for event in source.aiter_sse():
            assert event.json() == {"delta": "first half, "}
            break  # hang up after the first delta
    gate.set()
    for _ in range(100):
        stored = (await client.get(f"/v1/sessions/{session_id}")).json()["messages"]
        if stored:
            break
        await asyncio.sleep(0.02)
    assert [m["content"] for m in stored] == ["hi", "first half, second half"]


class BrokenStore(MemoryStore):
    async def append(self, key: str, turns: Sequence[Turn]) -> None:
        raise OSError("disk full")


async def test_a_failing_store_is_a_json_500_or_an_error_event(
    server: WebServer, client: httpx.AsyncClient
) -> None:
    session_id = await new_session(client)
    server.app.pipelines["shop"].store = BrokenStore()
    url = f"/v1/sessions/{session_id}/messages"
    assert_error(await client.post(url, json={"message": "hi"}), 500, "internal")
    async with aconnect_sse(client, "POST", url, json={"message": "hi", "stream": True}) as source:
        events = [(event.event, event.json()) async for event in source.aiter_sse()]
    assert events[-1] == ("error", {"error": {"code": "internal", "message": FAILED}})


# ---- access ---------------------------------------------------------------------------

V1_ROUTES = [
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions/SID"),
    ("DELETE", "/v1/sessions/SID"),
    ("POST", "/v1/sessions/SID/messages"),
    ("GET", "/v1/models"),
]


@pytest.mark.parametrize(("method", "path"), V1_ROUTES)
async def test_every_v1_route_needs_a_valid_key(
    server: WebServer, client: httpx.AsyncClient, method: str, path: str
) -> None:
    session_id = await new_session(client)
    url = path.replace("SID", session_id)
    body = {"message": "hi"} if path.endswith("/messages") else None
    refused = [None, "Bearer wrong-key", f"Basic {KEY}", "Bearer", f"Bearer {KEY}x", KEY]
    async with server.client(None) as anonymous:
        for authorization in refused:
            headers = {"Authorization": authorization} if authorization else {}
            response = await anonymous.request(method, url, json=body, headers=headers)
            assert_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
        accepted = await anonymous.request(
            method, url, json=body, headers={"Authorization": f"bearer {KEY}"}
        )
    assert accepted.status_code < 300


async def test_live_events_and_handoffs_need_a_valid_key(
    server: WebServer, client: httpx.AsyncClient
) -> None:
    session_id = await new_session(client)
    async with server.client("wrong-key") as stranger:
        for method, path in [("GET", "events"), ("POST", "handoff")]:
            response = await stranger.request(method, f"/v1/sessions/{session_id}/{path}")
            assert_error(response, 401, "unauthorized")


async def test_without_configured_keys_the_api_refuses_everyone(shop: BotDefinition) -> None:
    served = web_server([shop], settings={"web": {"api_keys": ""}})
    async with served as server, server.client("") as client:
        assert_error(await client.get("/v1/models"), 401, "unauthorized")


async def test_a_session_is_invisible_to_another_key(server: WebServer) -> None:
    async with server.client(KEY) as mine, server.client(OTHER_KEY) as theirs:
        session_id = await new_session(mine)
        await mine.post(f"/v1/sessions/{session_id}/messages", json={"message": "hello"})
        url = f"/v1/sessions/{session_id}"
        assert_error(await theirs.get(url), 404, "not_found")
        assert_error(await theirs.post(f"{url}/messages", json={"message": "hi"}), 404, "not_found")
        assert_error(await theirs.delete(url), 404, "not_found")
        state = await mine.get(url)
        assert state.status_code == 200
        assert [m["content"] for m in state.json()["messages"]][0] == "hello"
        own = await new_session(theirs)
        assert_error(await mine.get(f"/v1/sessions/{own}"), 404, "not_found")


async def test_healthz_needs_no_key(server: WebServer) -> None:
    async with server.client(None) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


# ---- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[1, 2]", "invalid_request"),
        (b'"a string"', "invalid_request"),
        (b"null", "invalid_request"),
        (b'{"bot": 7}', "invalid_request"),
        (b'{"metadata": [1]}', "invalid_request"),
        (b'{"user": ""}', "invalid_request"),
        (b'{"bots": "shop"}', "invalid_request"),
        (b'{"bot": "bakery"}', "unknown_bot"),
        (b'{"bot": ""}', "unknown_bot"),
    ],
)
async def test_bad_session_bodies_are_422(
    client: httpx.AsyncClient, content: bytes, code: str
) -> None:
    response = await client.post(
        "/v1/sessions", content=content, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422, code)


@pytest.mark.parametrize(
    ("content", "code", "mentions"),
    [
        (b"", "invalid_request", "message"),
        (b"{}", "invalid_request", "message"),
        (b"{oops", "invalid_json", "JSON"),
        (b"[]", "invalid_request", "object"),
        (b'{"message": 42}', "invalid_request", "message"),
        (b'{"message": null}', "invalid_request", "message"),
        (b'{"message": "hi", "stream": "yes"}', "invalid_request", "stream"),
        (b'{"message": "   "}', "invalid_request", "empty"),
        (b'{"mesage": "hi"}', "invalid_request", "mesage"),
    ],
)
async def test_bad_message_bodies_are_422(
    client: httpx.AsyncClient, content: bytes, code: str, mentions: str
) -> None:
    session_id = await new_session(client)
    response = await client.post(f"/v1/sessions/{session_id}/messages", content=content)
    assert mentions in assert_error(response, 422, code)["message"]


async def test_bot_is_required_when_several_are_served(shop: BotDefinition, home: Path) -> None:
    write_bot(home, "bakery")
    bakery = BotHome(home).load_checked("bakery")
    async with web_server([shop, bakery]) as server, server.client() as client:
        error = assert_error(await client.post("/v1/sessions", json={}), 422, "invalid_request")
        assert "bakery" in error["message"] and "shop" in error["message"]
        assert (await client.post("/v1/sessions", json={"bot": "bakery"})).json()["bot"] == "bakery"


async def test_too_large_messages_and_bodies_are_413(shop: BotDefinition) -> None:
    served = web_server([shop], settings={"web": {"max_message_chars": 50}})
    async with served as server, server.client() as client:
        session_id = await new_session(client)
        url = f"/v1/sessions/{session_id}/messages"
        assert (await client.post(url, json={"message": "x" * 50})).status_code == 200
        error = assert_error(
            await client.post(url, json={"message": "x" * 51}), 413, "message_too_large"
        )
        assert "50" in error["message"]
        huge = json.dumps({"message": "hi", "metadata": {"x": "y" * 200_000}})
        assert_error(await client.post("/v1/sessions", content=huge), 413, "too_large")
        assert_error(await client.post(url, content=huge), 413, "too_large")


async def test_the_default_message_limit_is_16000_characters(client: httpx.AsyncClient) -> None:
    session_id = await new_session(client)
    url = f"/v1/sessions/{session_id}/messages"
    assert_error(await client.post(url, json={"message": "x" * 16_001}), 413, "message_too_large")
    assert (await client.post(url, json={"message": "x" * 16_000})).status_code == 200


@pytest.mark.parametrize("session_id", ["nope", "x" * 300, "a%20b", "%00", "%E2%9C%93"])
async def test_unknown_sessions_are_404(client: httpx.AsyncClient, session_id: str) -> None:
    assert_error(await client.get(f"/v1/sessions/{session_id}"), 404, "not_found")
    response = await client.post(f"/v1/sessions/{session_id}/messages", json={"message": "hi"})
    assert_error(response, 404, "not_found")


# ---- models, metrics, OpenAPI -----------------------------------------------------------


async def test_models_without_an_llm_are_faq(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/v1/models")).json()
    assert listed["models"] == [{"bot": "shop", "model": "faq", "description": "A test bot"}]
    assert listed["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in listed["data"]] == [
        ("shop", "model", "botkit")
    ]


async def test_models_name_each_bots_model(shop: BotDefinition, home: Path) -> None:
    write_bot(home, "bakery", settings='model = "bread-1"\n')
    bakery = BotHome(home).load_checked("bakery")
    settings = {"llm": {"api_key": "sk-test", "model": "house-model"}}
    async with web_server([shop, bakery], settings=settings) as server, server.client() as client:
        models = (await client.get("/v1/models")).json()["models"]
    assert {m["bot"]: m["model"] for m in models} == {"shop": "house-model", "bakery": "bread-1"}


async def test_metrics_count_messages_latency_tokens_and_errors(
    server: WebServer, client: httpx.AsyncClient
) -> None:
    session_id = await new_session(client)
    url = f"/v1/sessions/{session_id}/messages"
    await client.post(url, json={"message": "When are you open?"})
    server.app.pipelines["shop"].responder = ScriptedResponder(["ok"], usage=Usage(11, 7))
    await client.post(url, json={"message": "anything"})
    server.app.pipelines["shop"].responder = FailingResponder()
    await client.post(url, json={"message": "how long does shipping take?"})

    async with server.client(None) as anonymous:
        response = await anonymous.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'botkit_messages_total{bot="shop",channel="web",kind="answer"} 3.0' in text
    assert 'botkit_reply_seconds_count{bot="shop",channel="web"} 3.0' in text
    assert 'botkit_llm_tokens_total{bot="shop",type="prompt"} 11.0' in text
    assert 'botkit_llm_tokens_total{bot="shop",type="completion"} 7.0' in text
    assert 'botkit_errors_total{bot="shop",kind="ConnectionError"} 1.0' in text


async def test_metrics_are_per_app(shop: BotDefinition) -> None:
    settings = Settings(store={"url": "memory://"})
    async with (
        BotApp(settings=settings, bots=[shop]) as first,
        BotApp(settings=settings, bots=[shop]) as second,
    ):
        assert first.metrics.registry is not second.metrics.registry
        # Each app's pipelines feed its own metrics (and its own outcome recorder).
        assert first.pipelines["shop"].listeners == [
            first.metrics.observe,
            first.outcomes.observe,
        ]


@pytest.mark.parametrize("desk", [None, "webhook"])
async def test_openapi_validates_and_matches_the_routes(home: Path, desk: str | None) -> None:
    settings = None
    if desk is not None:
        settings = f'[handoff]\ndesk = "{desk}"\nwebhook_url = "https://desk.example.com/h"\n'
    write_bot(home, "shop", settings=settings)
    bot = BotHome(home).load_checked("shop")
    served_settings = {"handoff": {"webhook_secret": "s"}}
    async with web_server([bot], settings=served_settings) as server, server.client() as client:
        document = (await client.get("/openapi.json")).json()
        validate(document)
        described = {
            (path, method.upper())
            for path, item in document["paths"].items()
            for method in item
            if method != "parameters"
        }
        served = {
            (route.path, method)
            for route in served_routes(server.app)
            if isinstance(route, Route) and route.include_in_schema
            for method in route.methods or ()
            if method != "HEAD"
        }
    assert described == served
    assert {"/v1/sessions", "/v1/models", "/healthz", "/readyz", "/metrics"} <= {
        p for p, _ in served
    }
    handoffs_api = {p for p, _ in served if p.startswith("/v1/handoffs")}
    assert bool(handoffs_api) == (desk == "webhook")
    assert ("webhooks" in document) == (desk == "webhook")


# ---- the inbox and retries ----------------------------------------------------------------


class UnavailableInbox(MemoryStore):
    """A store that cannot take a message into its inbox (as Redis going away would)."""

    async def inbox_add(self, **fields: Any) -> None:  # type: ignore[override]
        raise StoreError("Redis store at 127.0.0.1:6379: Connection refused")


async def test_a_message_the_store_cannot_take_is_a_503_and_nothing_is_kept(
    server: WebServer, client: httpx.AsyncClient
) -> None:
    session_id = await new_session(client)
    broken = UnavailableInbox()
    server.app.pipelines["shop"].store = broken
    url = f"/v1/sessions/{session_id}/messages"
    for body in ({"message": "hi"}, {"message": "hi", "stream": True}):
        response = await client.post(url, json=body)
        error = assert_error(response, 503, "unavailable")
        assert response.headers["retry-after"] == "5" and "again" in error["message"]
    key = conversation_key("shop", "web", session_id)
    assert await broken.recent(key, 10) == [] and await server.app.store.recent(key, 10) == []


async def test_a_repeated_idempotency_key_gets_the_first_reply_and_stores_nothing_twice(
    shop: BotDefinition,
) -> None:
    llm = FakeLLM("Your parcel left today.")
    settings = {"llm": {"api_key": "sk-test", "base_url": "http://llm.invalid/v1"}}
    served = web_server([shop], settings=settings, transport=llm.transport)
    async with served as server, server.client() as client:
        session_id = await new_session(client)
        url = f"/v1/sessions/{session_id}/messages"
        key = {"Idempotency-Key": "3f1c9a52-2b44-4c1e-9a55-0d2f7f3c1e11"}
        first = await client.post(url, json={"message": "Where is my parcel?"}, headers=key)
        again = await client.post(url, json={"message": "Where is my parcel?"}, headers=key)
        streamed = await client.post(
            url, json={"message": "Where is my parcel?", "stream": True}, headers=key
        )
        other = await client.post(url, json={"message": "Where is my parcel?"})
        history = (await client.get(f"/v1/sessions/{session_id}")).json()["messages"]
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and first.json()["reply"] == "Your parcel left today."
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert 'event: done\ndata: {"reply":"Your parcel left today."' in streamed.text
    assert other.json()["message_id"] != first.json()["message_id"]  # no key: a new message
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert len(llm.requests) == 2


async def test_a_repeat_waits_for_the_first_reply(server: WebServer) -> None:
    gate = asyncio.Event()
    responder = ScriptedResponder(["slow ", "answer"], gate=gate)
    server.app.pipelines["shop"].responder = responder
    async with server.client() as client:
        session_id = await new_session(client)
        url = f"/v1/sessions/{session_id}/messages"
        key = {"Idempotency-Key": "k-1"}
        body = {"message": "hi", "stream": True}
        first = asyncio.create_task(client.post(url, json=body, headers=key))
        await asyncio.wait_for(responder.started.wait(), 5)
        repeat = asyncio.create_task(client.post(url, json={"message": "hi"}, headers=key))
        await asyncio.sleep(0.2)
        assert not repeat.done()  # it waits, rather than storing the message again
        gate.set()
        replies = await asyncio.gather(first, repeat)
        history = (await client.get(f"/v1/sessions/{session_id}")).json()["messages"]
    assert replies[1].json()["reply"] == "slow answer"
    assert replies[1].json()["message_id"] in replies[0].text
    assert [m["content"] for m in history] == ["hi", "slow answer"]


async def test_idempotency_keys_are_per_session_and_per_message(client: httpx.AsyncClient) -> None:
    first, second = await new_session(client), await new_session(client)
    key = {"Idempotency-Key": "same-key"}
    asked = {"message": "When are you open?"}
    one = await client.post(f"/v1/sessions/{first}/messages", json=asked, headers=key)
    two = await client.post(f"/v1/sessions/{second}/messages", json=asked, headers=key)
    assert "idempotent-replayed" not in two.headers
    assert one.json()["message_id"] != two.json()["message_id"]
    reused = await client.post(
        f"/v1/sessions/{first}/messages", json={"message": "Something else"}, headers=key
    )
    assert_error(reused, 422, "idempotency_key_reused")
    for bad in ("", "x" * 256, "ключ"):
        response = await client.post(
            f"/v1/sessions/{first}/messages",
            json=asked,
            headers={"Idempotency-Key": bad.encode()},
        )
        assert "Idempotency-Key" in assert_error(response, 422, "invalid_request")["message"]
    history = (await client.get(f"/v1/sessions/{first}")).json()["messages"]
    assert len(history) == 2
