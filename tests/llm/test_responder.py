"""A bot answering through the LLM chain over real HTTP: retries, fallbacks, budgets, usage."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from botkit.app import BotApp
from botkit.home import BotHome
from botkit.llm.responder import CUT_OFF
from botkit.messages import Reply, Turn
from botkit.settings import Settings
from botkit.testing import FakeChannel, write_bot
from tests.llm.openai_server import Answer, Fail, OpenAIServer, Streamed
from tests.loopback import free_port

FAQ_ANSWER = "We are open Monday to Friday, 9:00 to 17:00."


def settings(home: Path, base_url: str, **llm: Any) -> Settings:
    values = {"base_url": base_url, "api_key": "sk-test", "retry_backoff": 0.01, **llm}
    return Settings(home=home, store={"url": "memory://"}, llm=values)


@asynccontextmanager
async def running(
    home: Path, base_url: str, bot: str = "shop", **llm: Any
) -> AsyncIterator[tuple[BotApp, FakeChannel]]:
    definition = BotHome(home).load_checked(bot)
    async with BotApp(settings=settings(home, base_url, **llm), bots=[definition]) as app:
        yield app, FakeChannel(app.pipelines[bot].handle, bot=bot, user_id="ann")


async def history(app: BotApp, chat: FakeChannel) -> list[str]:
    return [t.content for t in await app.store.recent(chat.message("").conversation_key, 50)]


async def ask(chat: FakeChannel, text: str) -> Reply:
    reply = await chat.say(text)
    assert reply is not None
    return reply


async def test_the_model_answers_and_both_turns_are_stored(
    home: Path, openai_server: OpenAIServer
) -> None:
    async with running(home, openai_server.base_url) as (app, chat):
        reply = await ask(chat, "When are you open?")
        assert reply.text == "Hello from the test server."
        assert reply.usage.total_tokens == 49 and reply.model == "gpt-4o-mini"
        assert await history(app, chat) == ["When are you open?", "Hello from the test server."]
    body = openai_server.received[0].body
    assert body["model"] == "gpt-4o-mini" and body["max_tokens"] == 512
    assert FAQ_ANSWER in body["messages"][0]["content"]  # the FAQ snippet is in the prompt
    assert body["messages"][-1] == {"role": "user", "content": "When are you open?"}
    assert len(body["user"]) == 32  # a pseudonym, not the user id itself


async def test_a_streamed_answer_through_the_pipeline(
    home: Path, openai_server: OpenAIServer
) -> None:
    openai_server.then(Streamed(["Open ", "nine ", "to five."]))
    async with running(home, openai_server.base_url) as (app, chat):
        stream = app.pipelines["shop"].stream(chat.message("hours?"))
        deltas = [d async for d in stream]
        assert deltas == ["Open ", "nine ", "to five."]
        assert stream.reply is not None and stream.reply.usage.completion_tokens == 3
        assert await history(app, chat) == ["hours?", "Open nine to five."]


async def test_retry_after_is_honoured_then_the_answer_arrives(
    home: Path, openai_server: OpenAIServer
) -> None:
    openai_server.then(
        Fail(429, {"message": "slow down", "code": "rate_limit_exceeded"}, {"retry-after": "0.4"})
    )
    async with running(home, openai_server.base_url) as (_, chat):
        reply = await ask(chat, "hi")
    assert reply.text == "Hello from the test server."
    first, second = openai_server.received
    assert second.at - first.at >= 0.38


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retried(
    home: Path, openai_server: OpenAIServer, status: int
) -> None:
    openai_server.then(Fail(status), Fail(status))
    async with running(home, openai_server.base_url) as (_, chat):
        assert (await ask(chat, "hi")).text == "Hello from the test server."
    assert len(openai_server.received) == 3


async def test_when_every_attempt_fails_the_faq_answers_and_the_question_is_kept(
    home: Path, openai_server: OpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    openai_server.then(*[Fail(500, {"message": "down for maintenance"})] * 4)
    with caplog.at_level(logging.INFO):
        async with running(home, openai_server.base_url) as (app, chat):
            reply = await ask(chat, "When are you open?")
            assert reply.text == FAQ_ANSWER and reply.error == "ServerError"
            assert await history(app, chat) == ["When are you open?", FAQ_ANSWER]
    assert len(openai_server.received) == 4  # 1 attempt + 3 retries
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "down for maintenance" in errors[0].getMessage()
    assert not errors[0].exc_info  # a cause, not a traceback
    assert "sk-test" not in caplog.text


async def test_a_read_timeout_is_retried(home: Path, openai_server: OpenAIServer) -> None:
    openai_server.then(Answer(text="too late", delay=1.0), Answer(text="in time"))
    async with running(home, openai_server.base_url, timeout_read=0.2) as (_, chat):
        assert (await ask(chat, "hi")).text == "in time"


async def test_connection_refused_falls_back_to_the_faq(home: Path) -> None:
    port = free_port()  # nothing listens there
    async with running(home, f"http://127.0.0.1:{port}/v1") as (app, chat):
        reply = await ask(chat, "When are you open?")
    assert reply.text == FAQ_ANSWER and reply.error == "APIConnectionError"


async def test_malformed_json_falls_back_to_the_faq(
    home: Path, openai_server: OpenAIServer
) -> None:
    openai_server.then(Fail(200, body=b"<html>gateway</html>"))
    async with running(home, openai_server.base_url) as (_, chat):
        reply = await ask(chat, "When are you open?")
    assert reply.text == FAQ_ANSWER and reply.error == "MalformedResponseError"


async def test_a_stream_cut_off_keeps_what_arrived(home: Path, openai_server: OpenAIServer) -> None:
    openai_server.then(Streamed(["We open ", "at nine ", "and close"], break_after=2))
    async with running(home, openai_server.base_url) as (app, chat):
        stream = app.pipelines["shop"].stream(chat.message("hours?"))
        text = "".join([d async for d in stream])
        assert text.startswith("We open at nine ") and "interrupted" in text
        assert stream.reply is not None and stream.reply.error == "StreamInterruptedError"
        assert (await history(app, chat))[-1] == text
    assert len(openai_server.received) == 1  # shown text cannot be retried without repeating


async def test_an_exhausted_quota_is_not_retried(home: Path, openai_server: OpenAIServer) -> None:
    openai_server.then(
        Fail(
            429,
            {
                "message": "You exceeded your current quota",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
            },
        )
    )
    async with running(home, openai_server.base_url) as (_, chat):
        reply = await ask(chat, "When are you open?")
    assert reply.text == FAQ_ANSWER and reply.error == "QuotaExceededError"
    assert len(openai_server.received) == 1


async def test_context_length_is_retried_with_a_shorter_history(
    home: Path, openai_server: OpenAIServer
) -> None:
    async with running(home, openai_server.base_url) as (app, chat):
        for i in range(30):
            await app.store.append(chat.message("").conversation_key, _turns(i))
        openai_server.then(
            Fail(
                400,
                {
                    "message": "This model's maximum context length is 8192 tokens",
                    "code": "context_length_exceeded",
                },
            )
        )
        reply = await ask(chat, "and now?")
    assert reply.text == "Hello from the test server."
    first, second = (len(r.body["messages"]) for r in openai_server.received)
    assert second < first
    assert openai_server.received[1].body["messages"][-1]["content"] == "and now?"


def _turns(i: int) -> list[Turn]:
    return [
        Turn("user", f"q{i} " + "x " * 300, time.time(), 210),
        Turn("assistant", f"a{i} " + "y " * 300, time.time(), 210),
    ]


async def test_the_next_endpoint_answers_when_the_first_fails(
    tmp_path: Path, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup = OpenAIServer()
    await backup.start()
    try:
        backup.then(Answer(text="from the backup"))
        monkeypatch.setenv("BACKUP_KEY", "sk-backup")
        write_bot(
            tmp_path,
            "shop",
            settings=(
                "[[fallbacks]]\n"
                f'base_url = "{backup.base_url}"\n'
                'model = "backup-model"\napi_key_env = "BACKUP_KEY"\n'
            ),
        )
        openai_server.then(Fail(401, {"message": "Incorrect API key", "code": "invalid_api_key"}))
        async with running(tmp_path, openai_server.base_url) as (_, chat):
            reply = await ask(chat, "hi")
        assert reply.text == "from the backup" and reply.model == "backup-model"
        assert len(openai_server.received) == 1  # authentication errors are not retried
        assert backup.received[0].headers["authorization"] == "Bearer sk-backup"
        assert backup.received[0].body["model"] == "backup-model"
    finally:
        await backup.stop()
    assert backup.violations == []


async def test_over_budget_users_are_told_without_an_api_call(
    tmp_path: Path, openai_server: OpenAIServer
) -> None:
    write_bot(tmp_path, "shop", settings="daily_tokens_per_user = 40\n")
    async with running(tmp_path, openai_server.base_url) as (app, chat):
        first = await ask(chat, "hi")
        second = await ask(chat, "hi again")
        other_user = await FakeChannel(app.pipelines["shop"].handle, bot="shop", user_id="bob").say(
            "hi"
        )
    assert first.kind == "answer"  # 49 tokens: the budget is spent after this one
    assert second.kind == "limit" and "limit" in second.text
    assert other_user is not None and other_user.kind == "answer"
    assert len(openai_server.received) == 2


async def test_a_bot_over_its_daily_budget_answers_nobody(
    tmp_path: Path, openai_server: OpenAIServer
) -> None:
    write_bot(tmp_path, "shop", settings="daily_tokens = 10\n")
    async with running(tmp_path, openai_server.base_url) as (app, chat):
        await ask(chat, "hi")
        other = await FakeChannel(app.pipelines["shop"].handle, bot="shop", user_id="bob").say("hi")
    assert other is not None and other.kind == "limit"


async def test_usage_is_recorded_per_bot_user_and_day(
    home: Path, openai_server: OpenAIServer
) -> None:
    store_url = f"sqlite:///{home}/usage.db"
    definition = BotHome(home).load_checked("shop")
    config = Settings(
        home=home, store={"url": store_url}, llm=settings(home, openai_server.base_url).llm
    )
    async with BotApp(settings=config, bots=[definition]) as app:
        chat = FakeChannel(app.pipelines["shop"].handle, bot="shop", user_id="ann")
        await ask(chat, "one")
        await ask(chat, "two")
    async with BotApp(settings=config, bots=[definition]) as app:
        totals = await app.store.usage_totals(since="2000-01-01")
        assert [(t.bot, t.model, t.prompt_tokens, t.completion_tokens) for t in totals] == [
            ("shop", "gpt-4o-mini", 84, 14)
        ]
        assert await app.store.tokens_used(day=totals[0].day, bot="shop", user="ann") == 98


async def test_a_cut_off_answer_is_flagged(home: Path, openai_server: OpenAIServer) -> None:
    openai_server.then(Answer(text="The first half", finish_reason="length"))
    async with running(home, openai_server.base_url) as (_, chat):
        reply = await ask(chat, "tell me everything")
    assert reply.truncated and reply.text == "The first half" + CUT_OFF


async def test_the_deadline_bounds_one_message(home: Path, openai_server: OpenAIServer) -> None:
    openai_server.then(*[Answer(delay=1.0)] * 10)
    async with running(home, openai_server.base_url, deadline=0.6) as (_, chat):
        started = time.monotonic()
        reply = await ask(chat, "When are you open?")
    assert reply.text == FAQ_ANSWER and reply.error == "APITimeoutError"
    assert time.monotonic() - started < 1.5


async def test_an_unknown_model_name_just_works(
    tmp_path: Path, openai_server: OpenAIServer
) -> None:
    write_bot(tmp_path, "shop", settings='model = "brand-new-model-2031"\n')
    async with running(tmp_path, openai_server.base_url) as (_, chat):
        reply = await ask(chat, "hi")
    assert reply.model == "brand-new-model-2031"
