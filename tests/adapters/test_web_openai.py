"""Every bot as an OpenAI-compatible model: the official `openai` client against a running
`botkit serve --channel web`, and the bodies against the official OpenAI OpenAPI schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from httpx_sse import aconnect_sse

from botkit.home import BotDefinition, BotHome
from botkit.messages import conversation_key
from botkit.testing import FakeLLM, faq_file, write_bot
from tests.adapters.test_web_api import HOURS
from tests.adapters.web_testing import KEY, WebServer, web_server
from tests.llm import openai_spec
from tests.workers.cluster import KEY as WORKER_KEY
from tests.workers.cluster import EchoLLM, start_worker

SYSTEM = """\
You are the Acme shop's assistant.
{% for snippet in faq %}Q: {{ snippet.question }} A: {{ snippet.answer }}
{% endfor %}"""
CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "Answer in French."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "When are you open?"},
]
README = Path(__file__).resolve().parents[2] / "README.md"
LLM = {"llm": {"api_key": "sk-test", "base_url": "http://llm.invalid/v1"}}


def acme(home: Path, settings: str = "") -> BotDefinition:
    faq = {"hours.md": faq_file("When are you open?", HOURS)}
    write_bot(home, "shop", system=SYSTEM, faq=faq, settings=settings)
    return BotHome(home).load_checked("shop")


async def test_the_openai_client_talks_to_a_bot_by_name(tmp_path: Path) -> None:
    acme(tmp_path)
    async with EchoLLM(delay=0).running() as llm:
        env = {
            "BOTKIT_LLM_BASE_URL": llm.base_url,
            "BOTKIT_LLM_API_KEY": "sk-upstream",
            "BOTKIT_STORE_URL": f"sqlite:///{tmp_path / 'botkit.db'}",
        }
        worker = start_worker(tmp_path, ["shop"], env, name="serve", channels=["web"])
        try:
            await worker.until_ready()
            client = openai.AsyncOpenAI(
                base_url=f"{worker.url}/v1", api_key=WORKER_KEY, max_retries=0
            )
            async with client:
                models = await client.models.list()
                completion = await client.chat.completions.create(
                    model="shop", messages=CONVERSATION
                )
                stream = await client.chat.completions.create(
                    model="shop",
                    messages=CONVERSATION,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                chunks = [chunk async for chunk in stream]
                with pytest.raises(openai.NotFoundError) as unknown:
                    await client.chat.completions.create(model="gpt-4o", messages=CONVERSATION)
                with pytest.raises(openai.UnprocessableEntityError):
                    await client.chat.completions.create(model="shop", messages=CONVERSATION, n=2)
            stranger = openai.AsyncOpenAI(
                base_url=f"{worker.url}/v1", api_key="wrong-key", max_retries=0
            )
            async with stranger:
                with pytest.raises(openai.AuthenticationError):
                    await stranger.models.list()
                with pytest.raises(openai.AuthenticationError):
                    await stranger.chat.completions.create(model="shop", messages=CONVERSATION)
        finally:
            await worker.stop()

    assert [model.id for model in models.data] == ["shop"]
    answer = completion.choices[0].message
    assert answer.role == "assistant" and answer.content == "re: When are you open?"
    assert completion.model == "shop" and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 12
    joined = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert joined == answer.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1
    assert unknown.value.status_code == 404 and "gpt-4o" in unknown.value.message
    # The bot's system prompt (with the FAQ it chose) first, the caller's system message
    # after it; then the caller's conversation as it was.
    for sent in llm.requests:
        system = sent[0]
        assert system["role"] == "system"
        assert system["content"].startswith("You are the Acme shop's assistant.")
        assert HOURS in system["content"] and system["content"].endswith("Answer in French.")
        assert sent[1:] == CONVERSATION[1:]
    assert len(llm.requests) == 2  # the refused requests never reached the model


# ---- the bodies, against the official OpenAI OpenAPI schema ---------------------------------


@pytest.fixture
async def offline(home: Path) -> Any:
    async with web_server([acme(home)]) as server, server.client() as client:
        yield server, client


async def test_bodies_match_the_official_openai_schema(
    offline: tuple[WebServer, httpx.AsyncClient], home: Path
) -> None:
    openai_spec.require_spec()
    _, client = offline
    body = {"model": "shop", "messages": CONVERSATION}
    whole = await client.post("/v1/chat/completions", json=body)
    assert openai_spec.errors("CreateChatCompletionResponse", whole.json()) == []
    for options in (None, {"include_usage": True}):
        streamed = {**body, "stream": True, "stream_options": options}
        chunks = await chunks_of(client, streamed)
        for chunk in chunks:
            assert openai_spec.errors("CreateChatCompletionStreamResponse", chunk) == []
    models = (await client.get("/v1/models")).json()
    assert openai_spec.errors("ListModelsResponse", models) == []
    refusals = [
        await client.post("/v1/chat/completions", json={**body, "model": "nope"}),
        await client.post("/v1/chat/completions", json={**body, "n": 3}),
        await client.post("/v1/chat/completions", content=b"{oops"),
        await client.post("/v1/chat/completions", json=body, headers={"Authorization": "x"}),
        await client.get("/v1/models", headers={"Authorization": "Bearer wrong"}),
    ]
    assert [r.status_code for r in refusals] == [404, 422, 422, 401, 401]
    for refused in refusals:
        assert openai_spec.errors("ErrorResponse", refused.json()) == []
        # botkit's own error shape holds too: code and message
        assert refused.json()["error"]["code"] and refused.json()["error"]["message"]


async def chunks_of(client: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The `data:` events of a streamed completion, checking it ends with `[DONE]`."""
    async with aconnect_sse(client, "POST", "/v1/chat/completions", json=body) as source:
        data = [event.data async for event in source.aiter_sse()]
    assert data[-1] == "[DONE]"
    return [json.loads(item) for item in data[:-1]]


# ---- offline, kept conversations, parameters, bad input ------------------------------------


async def test_an_offline_bot_answers_from_its_faq_whole_and_streamed(
    offline: tuple[WebServer, httpx.AsyncClient],
) -> None:
    server, client = offline
    body = {"model": "shop", "messages": [{"role": "user", "content": "When are you open?"}]}
    whole = (await client.post("/v1/chat/completions", json=body)).json()
    assert whole["choices"][0]["message"]["content"] == HOURS
    chunks = await chunks_of(client, {**body, "stream": True})
    deltas = [c["choices"][0]["delta"].get("content", "") for c in chunks]
    assert "".join(deltas) == HOURS and "usage" not in chunks[-1]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # Without a `user`, nothing is kept.
    assert not any(server.app.store._turns.values())  # type: ignore[attr-defined]


async def test_with_a_user_each_exchange_is_kept_as_their_conversation(
    offline: tuple[WebServer, httpx.AsyncClient],
) -> None:
    server, client = offline
    asked = [{"role": "user", "content": "When are you open?"}]
    for stream in (False, True):
        body = {"model": "shop", "messages": asked, "user": "customer-42", "stream": stream}
        response = await client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200
    turns = await server.app.store.recent(conversation_key("shop", "openai", "customer-42"), 10)
    assert [(t.role, t.content) for t in turns] == [
        ("user", "When are you open?"),
        ("assistant", HOURS),
    ] * 2


async def test_sampling_parameters_apply_only_where_the_bot_allows_them(home: Path) -> None:
    bot = acme(home, 'temperature = 0.9\nsession_overrides = ["max_tokens"]\n')
    llm = FakeLLM("Bonjour.")
    served = web_server([bot], settings=LLM, transport=llm.transport)
    async with served as server, server.client() as client:
        body = {
            "model": "shop",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hours?"}]}],
            "temperature": 0.1,
            "top_p": 0.5,
            "max_completion_tokens": 64,
            "frequency_penalty": 1,
            "seed": 3,
            "logprobs": False,
        }
        response = await client.post("/v1/chat/completions", json=body)
    assert response.json()["choices"][0]["message"]["content"] == "Bonjour."
    [sent] = llm.requests
    assert sent["temperature"] == 0.9 and sent["max_tokens"] == 64
    assert "top_p" not in sent and "frequency_penalty" not in sent and "seed" not in sent
    assert sent["messages"][-1] == {"role": "user", "content": "Hours?"}
    assert response.json()["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
    }


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, 422, "model"),
        ({"model": "shop", "messages": []}, 422, "messages"),
        ({"model": "shop", "messages": [{"role": "assistant", "content": "hi"}]}, 422, "messages"),
        (
            {"model": "shop", "messages": [{"role": "tool", "content": "hi"}]},
            422,
            "messages.0",
        ),
        (
            {"model": "shop", "messages": [{"role": "user", "content": 7}]},
            422,
            "messages.0.user.content",
        ),
        ({"model": "shop", "messages": [{"role": "user", "content": " "}]}, 422, "message"),
        ({"model": "shop", "messages": [{"role": "user", "content": "hi"}], "n": 2}, 422, "n"),
        (
            {
                "model": "shop",
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
            },
            422,
            "tools",
        ),
        ({"model": "bakery", "messages": [{"role": "user", "content": "hi"}]}, 404, "model"),
        (
            {"model": "shop", "messages": [{"role": "user", "content": "x" * 16_001}]},
            413,
            "message",
        ),
    ],
)
async def test_bad_requests_are_refused_in_the_openai_shape(
    offline: tuple[WebServer, httpx.AsyncClient], body: dict[str, Any], status: int, param: str
) -> None:
    _, client = offline
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert (error["param"] or "").startswith(param), error


async def test_the_key_is_checked_in_the_openai_shape(
    offline: tuple[WebServer, httpx.AsyncClient],
) -> None:
    server, _ = offline
    async with server.client(None) as anonymous:
        response = await anonymous.get("/v1/models")
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.json()["error"]["code"] == "unauthorized"


async def test_the_readmes_openai_example_runs(
    offline: tuple[WebServer, httpx.AsyncClient],
) -> None:
    """The README's five lines, as a reader would run them (the sync client, on a thread
    while this loop serves), pointed at this server."""
    import asyncio
    import contextlib
    import io
    import re

    server, _ = offline
    readme = README.read_text()
    [example] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "openai" in b]
    assert len(example.strip().splitlines()) == 5
    code = example.replace("http://localhost:8080/v1", f"{server.url}/v1")
    code = code.replace('"key-for-crm"', f'"{KEY}"')
    printed = io.StringIO()

    def run() -> None:
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "README.md", "exec"), {})

    await asyncio.to_thread(run)
    assert printed.getvalue() == HOURS + "\n"
