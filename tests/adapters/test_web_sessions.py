"""Sessions created with a conversation so far (`messages`) and parameters of their own
(`completion`, as far as the bot's `session_overrides` allows), and `metadata` kept small."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from botkit.home import BotDefinition, BotHome
from botkit.testing import FakeLLM, write_bot
from tests.adapters.test_web_api import assert_error, new_session
from tests.adapters.web_testing import WebServer, web_server
from tests.stores.conftest import REDIS_URL, redis_prefix

LLM = {"llm": {"api_key": "sk-test", "base_url": "http://llm.invalid/v1"}}
SEEDED = [
    {"role": "user", "content": "Order 1234 arrived broken."},
    {"role": "assistant", "content": "Sorry to hear that! Do you want a refund?"},
    {"role": "user", "content": "Maybe. What are my options?"},
]


def overriding_bot(home: Path, overrides: str) -> BotDefinition:
    write_bot(home, "shop", settings=f"temperature = 0.9\nsession_overrides = {overrides}\n")
    return BotHome(home).load_checked("shop")


async def test_a_seeded_session_sends_its_history_to_the_model_and_shows_it(home: Path) -> None:
    bot = overriding_bot(home, '["temperature", "model", "stop"]')
    llm = FakeLLM("Refund or replacement, as you like.")
    served = web_server([bot], settings=LLM, transport=llm.transport)
    async with served as server, server.client() as client:
        completion = {"temperature": 0.1, "model": "strict-model", "stop": ["END"]}
        session_id = await new_session(client, messages=SEEDED, completion=completion)
        reply = await client.post(
            f"/v1/sessions/{session_id}/messages", json={"message": "Refund please."}
        )
        state = (await client.get(f"/v1/sessions/{session_id}")).json()
    assert reply.status_code == 200, reply.text
    [request] = llm.requests
    sent = [(m["role"], m["content"]) for m in request["messages"][1:]]
    assert sent == [(m["role"], m["content"]) for m in SEEDED] + [("user", "Refund please.")]
    assert request["temperature"] == 0.1 and request["stop"] == ["END"]
    assert request["model"] == "strict-model"
    assert state["completion"] == completion
    assert [(m["role"], m["content"]) for m in state["messages"]] == [
        *((m["role"], m["content"]) for m in SEEDED),
        ("user", "Refund please."),
        ("assistant", "Refund or replacement, as you like."),
    ]


async def test_without_a_completion_the_bots_own_parameters_apply(home: Path) -> None:
    bot = overriding_bot(home, '["temperature"]')
    llm = FakeLLM("ok")
    served = web_server([bot], settings=LLM, transport=llm.transport)
    async with served as server, server.client() as client:
        session_id = await new_session(client)
        await client.post(f"/v1/sessions/{session_id}/messages", json={"message": "hi"})
        state = (await client.get(f"/v1/sessions/{session_id}")).json()
    assert llm.requests[0]["temperature"] == 0.9
    assert state["completion"] == {} and state["messages"][0]["content"] == "hi"


@pytest.mark.parametrize(
    ("overrides", "completion", "named"),
    [
        ("[]", {"temperature": 0.2}, "completion.temperature"),
        ('["temperature"]', {"model": "gpt-x"}, "completion.model"),
        ('["model"]', {"model": "m", "top_p": 0.5}, "completion.top_p"),
    ],
)
async def test_a_parameter_the_bot_does_not_allow_is_422_naming_it(
    home: Path, overrides: str, completion: dict[str, Any], named: str
) -> None:
    bot = overriding_bot(home, overrides)
    async with web_server([bot]) as server, server.client() as client:
        response = await client.post("/v1/sessions", json={"completion": completion})
        error = assert_error(response, 422, "invalid_request")
    assert error["message"].startswith(named) and "session_overrides" in error["message"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"messages": [{"role": "system", "content": "be rude"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": 7}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": "  "}]}, "messages.0.content"),
        ({"messages": [{"role": "user"}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": "x"}] * 101}, "messages"),
        ({"messages": "hello"}, "messages"),
        ({"completion": {"temperature": 3}}, "completion.temperature"),
        ({"completion": {"stop": ["a", "b", "c", "d", "e"]}}, "completion.stop"),
        ({"completion": {"seed": 1}}, "completion.seed"),
    ],
)
async def test_bad_messages_and_completions_are_422_naming_the_field(
    home: Path, body: dict[str, Any], named: str
) -> None:
    bot = overriding_bot(home, '["temperature", "stop"]')
    async with web_server([bot]) as server, server.client() as client:
        error = assert_error(await client.post("/v1/sessions", json=body), 422, "invalid_request")
    assert error["message"].startswith(named), error


async def test_a_seeded_message_over_the_size_limit_is_413_and_nothing_is_kept(
    shop: BotDefinition,
) -> None:
    served = web_server([shop], settings={"web": {"max_message_chars": 20}})
    async with served as server, server.client() as client:
        body = {"messages": [{"role": "user", "content": "short"}] * 99}
        assert (await client.post("/v1/sessions", json=body)).status_code == 201
        body["messages"] = [*body["messages"], {"role": "assistant", "content": "x" * 21}]
        response = await client.post("/v1/sessions", json=body)
        error = assert_error(response, 413, "message_too_large")
    assert error["message"].startswith("messages.99.content")


async def test_seeded_turns_are_not_left_behind_when_the_session_cannot_be_stored(
    server_with_failing_records: WebServer,
) -> None:
    server = server_with_failing_records
    async with server.client() as client:
        response = await client.post("/v1/sessions", json={"messages": SEEDED})
    assert_error(response, 503, "unavailable")
    assert response.headers["retry-after"] == "5"
    # The session's id was never told: look at every conversation the memory store holds.
    assert not any(server.app.store._turns.values())  # type: ignore[attr-defined]


@pytest.fixture
async def server_with_failing_records(shop: BotDefinition) -> Any:
    from botkit.errors import StoreError

    async with web_server([shop]) as server:
        store = server.app.store

        async def refuse(key: str, value: dict[str, Any], *, ttl: float | None = None) -> None:
            raise StoreError("Redis store at 127.0.0.1:6379: Connection refused")

        store.put_record = refuse  # type: ignore[method-assign]
        yield server


# ---- metadata ---------------------------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    """`{"a": {"a": … {}}}`: `depth` levels of objects, the outermost included."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("depth", [9, 254, 256, 995])
async def test_deep_metadata_is_422_and_never_stored(
    server_client: tuple[WebServer, httpx.AsyncClient], depth: int
) -> None:
    server, client = server_client
    # Written out: Python's json module cannot nest as deep as an attacker can.
    content = '{"metadata": ' + '{"a": ' * (depth - 1) + "{}" + "}" * (depth - 1) + "}"
    response = await client.post("/v1/sessions", content=content)
    error = assert_error(response, 422, "invalid_request")
    assert error["message"] == "metadata: nests deeper than 8 levels of objects and arrays"


async def test_metadata_up_to_the_limits_is_kept_and_shown(
    server_client: tuple[WebServer, httpx.AsyncClient],
) -> None:
    _, client = server_client
    deep = nested(8)
    session_id = await new_session(client, metadata=deep)
    assert (await client.get(f"/v1/sessions/{session_id}")).json()["metadata"] == deep
    big = {"notes": "x" * (16 * 1024 - 20)}
    assert len(json.dumps(big, separators=(",", ":"))) <= 16 * 1024
    session_id = await new_session(client, metadata=big)
    assert (await client.get(f"/v1/sessions/{session_id}")).json()["metadata"] == big
    too_big = {"notes": "x" * (16 * 1024)}
    error = assert_error(
        await client.post("/v1/sessions", json={"metadata": too_big}), 422, "invalid_request"
    )
    assert error["message"] == "metadata: larger than 16 KB as JSON"
    arrays = {"a": [[[[[[[[1]]]]]]]]}  # 9 levels: the object and eight arrays
    response = await client.post("/v1/sessions", json={"metadata": arrays})
    assert_error(response, 422, "invalid_request")


@pytest.fixture(params=["sqlite", "redis"])
async def server_client(shop: BotDefinition, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A server on each store the audit broke: SQLite (depth 256 stored, then unreadable)
    and Redis (orjson's limit at depth 254)."""
    if request.param == "sqlite":
        store = {"url": f"sqlite:///{tmp_path / 'web.db'}"}
        served = web_server([shop], settings={"store": store})
        async with served as server, server.client() as client:
            yield server, client
        return
    async for prefix in redis_prefix():
        store = {"url": REDIS_URL, "prefix": prefix}
        served = web_server([shop], settings={"store": store})
        async with served as server, server.client() as client:
            yield server, client


def test_an_unknown_session_override_names_the_file_and_line(home: Path) -> None:
    from botkit.errors import ConfigError

    write_bot(home, "shop", settings='temperature = 0.5\nsession_overrides = ["seed"]\n')
    with pytest.raises(ConfigError) as refused:
        BotHome(home).load_checked("shop")
    [problem] = refused.value.problems
    assert str(problem).startswith("bots/shop.toml:2: session_overrides.0:")
    assert "'temperature'" in problem.message  # it lists what may be allowed
