"""`POST /v1/answers`: one question answered from the bot's FAQ and the documents given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from botkit.home import BotDefinition, BotHome
from botkit.llm.usage import today
from botkit.testing import FakeLLM, write_bot
from tests.adapters.test_web_api import HOURS, assert_error
from tests.adapters.web_testing import WebServer, web_server

WARRANTY = "The Zephyr kettle comes with a warranty of seven years."
LLM = {"llm": {"api_key": "sk-test", "base_url": "http://llm.invalid/v1"}}


@pytest.fixture
async def served(shop: BotDefinition) -> Any:
    async with web_server([shop]) as server, server.client() as client:
        yield server, client


async def test_a_fact_only_in_a_document_is_answered_offline_and_listed(
    served: tuple[WebServer, httpx.AsyncClient],
) -> None:
    server, client = served
    body = {
        "question": "Is there a warranty on the Zephyr kettle?",
        "documents": ["Our shop is in Leeds.", {"title": "Kettles", "text": WARRANTY}],
    }
    response = await client.post("/v1/answers", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["answer"] == WARRANTY and answer["kind"] == "answer"
    assert answer["sources"][0]["document"] == 1 and answer["sources"][0]["title"] == "Kettles"
    assert 0 < answer["sources"][0]["score"] <= 1
    assert answer["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert answer["finish_reason"] == "stop"
    # Nothing is kept as a conversation: no turn anywhere in the store.
    assert not any(server.app.store._turns.values())  # type: ignore[attr-defined]


async def test_an_untitled_document_is_searched_by_its_whole_text(
    served: tuple[WebServer, httpx.AsyncClient],
) -> None:
    _, client = served
    body = {"question": "Is there a warranty on the Zephyr kettle?", "documents": [WARRANTY]}
    answer = (await client.post("/v1/answers", json=body)).json()
    assert answer["answer"] == WARRANTY and answer["sources"][0]["document"] == 0


async def test_the_bots_faq_answers_too_and_is_named_as_a_source(
    served: tuple[WebServer, httpx.AsyncClient],
) -> None:
    _, client = served
    answer = (await client.post("/v1/answers", json={"question": "When are you open?"})).json()
    assert answer["answer"] == HOURS
    assert answer["sources"][0]["faq"] == "faq/hours.md"


async def test_nothing_matching_is_the_fallback(
    served: tuple[WebServer, httpx.AsyncClient],
) -> None:
    _, client = served
    body = {"question": "Do you sell bicycles?", "documents": ["Kettles and toasters only."]}
    answer = (await client.post("/v1/answers", json=body)).json()
    assert answer["kind"] == "fallback" and answer["sources"] == []


async def test_with_an_llm_the_documents_and_examples_reach_the_model_and_usage_is_kept(
    home: Path,
) -> None:
    write_bot(
        home,
        "shop",
        settings='[handoff]\ndesk = "webhook"\nwebhook_url = "https://d.example.com/h"\n',
    )
    bot = BotHome(home).load_checked("shop")
    llm = FakeLLM("Seven years.")
    settings = LLM | {"handoff": {"webhook_secret": "s"}}
    async with web_server([bot], settings=settings, transport=llm.transport) as server:
        async with server.client() as client:
            body = {
                "question": "How long is the kettle warranty?",
                "documents": [{"title": "Kettles", "text": WARRANTY}],
                "examples": [{"question": "Do you ship abroad?", "answer": "Yes, to the EU."}],
            }
            answer = (await client.post("/v1/answers", json=body)).json()
        await server.app.pipelines["shop"].responder._meter.flush()  # type: ignore[attr-defined]
        used = await server.app.store.tokens_used(day=today(), bot="shop")
        kept = any(server.app.store._turns.values())  # type: ignore[attr-defined]
    assert answer["answer"] == "Seven years."
    assert answer["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    [request] = llm.requests
    messages = request["messages"]
    assert messages[0]["role"] == "system" and WARRANTY in messages[0]["content"]
    assert [(m["role"], m["content"]) for m in messages[1:]] == [
        ("user", "Do you ship abroad?"),
        ("assistant", "Yes, to the EU."),
        ("user", "How long is the kettle warranty?"),
    ]
    assert "tools" not in request  # a suggested reply has nobody to hand over
    assert used == 15 and not kept


async def test_answers_and_chat_completions_are_in_the_metrics(
    served: tuple[WebServer, httpx.AsyncClient],
) -> None:
    _, client = served
    await client.post("/v1/answers", json={"question": "When are you open?"})
    chat = {"model": "shop", "messages": [{"role": "user", "content": "When are you open?"}]}
    for _ in range(2):
        assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200
    text = (await client.get("/metrics")).text
    assert 'botkit_messages_total{bot="shop",channel="api",kind="answer"} 1.0' in text
    assert 'botkit_messages_total{bot="shop",channel="openai",kind="answer"} 2.0' in text
    assert 'botkit_reply_seconds_count{bot="shop",channel="openai"} 2.0' in text


@pytest.mark.parametrize(
    ("body", "status", "code", "named"),
    [
        ({"question": ""}, 422, "invalid_request", "question"),
        ({"question": "   "}, 422, "invalid_request", "question"),
        ({}, 422, "invalid_request", "question"),
        ({"question": "hi", "documents": [7]}, 422, "invalid_request", "documents.0"),
        ({"question": "hi", "examples": [{"question": "q"}]}, 422, "invalid_request", "examples"),
        ({"question": "hi", "bot": "bakery"}, 422, "unknown_bot", "bot"),
        ({"question": "hi", "documents": ["d"] * 21}, 413, "too_large", "documents"),
        (
            {"question": "hi", "documents": ["x" * 50_000] * 2 + ["y"]},
            413,
            "too_large",
            "documents",
        ),
        ({"question": "x" * 16_001}, 413, "message_too_large", "question"),
    ],
)
async def test_bad_questions_and_oversized_documents(
    served: tuple[WebServer, httpx.AsyncClient],
    body: dict[str, Any],
    status: int,
    code: str,
    named: str,
) -> None:
    _, client = served
    error = assert_error(await client.post("/v1/answers", json=body), status, code)
    assert error["message"].startswith(named), error


async def test_answers_need_a_key(served: tuple[WebServer, httpx.AsyncClient]) -> None:
    server, _ = served
    async with server.client("wrong") as stranger:
        response = await stranger.post("/v1/answers", json={"question": "When are you open?"})
    assert_error(response, 401, "unauthorized")
