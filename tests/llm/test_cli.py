"""`botkit usage` and `botkit models`."""

from __future__ import annotations

from pathlib import Path

import pytest

from botkit.cli import main
from botkit.llm.usage import today
from botkit.stores.base import UsageRecord
from botkit.stores.sqlite import SqliteStore
from tests.llm.openai_server import OpenAIServer


async def test_usage_prints_tokens_and_cost_per_bot_and_day(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await SqliteStore.open(home / ".botkit" / "botkit.db") as store:
        await store.add_usage(
            [
                UsageRecord(
                    today(), "shop", "ann", "shop/web/ann", "gpt-4o-mini", 1_000_000, 200_000
                ),
                UsageRecord(today(), "help", "bob", "help/web/bob", "unpriced", 10, 5),
                UsageRecord("2000-01-01", "shop", "ann", "shop/web/ann", "gpt-4o-mini", 1, 1),
            ]
        )
    monkeypatch.setenv("BOTKIT_LLM_PRICES", '{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}')
    assert await _run(["usage", "--days", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["day", "bot", "model", "prompt", "completion", "total", "cost"]
    assert lines[1].split() == [today(), "help", "unpriced", "10", "5", "15", "-"]
    assert lines[2].split() == [
        today(),
        "shop",
        "gpt-4o-mini",
        "1,000,000",
        "200,000",
        "1,200,000",
        "0.2700",
    ]
    assert await _run(["usage", "help"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


async def _run(argv: list[str]) -> int:
    import asyncio

    return await asyncio.to_thread(main, argv)


async def test_models_lists_what_the_api_offers(
    openai_server: OpenAIServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOTKIT_LLM_BASE_URL", openai_server.base_url)
    assert await _run(["models"]) == 0
    assert capsys.readouterr().out == "model-a\nmodel-b\n"


def test_models_without_an_llm_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 1
    assert "no LLM is configured" in capsys.readouterr().err
