from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from botkit.home import BotDefinition, BotHome
from botkit.llm.base import Completion
from botkit.llm.offline import FaqResponder
from botkit.messages import Reply, Usage
from botkit.pipeline import Pipeline, parse_command
from botkit.prompting.composer import Prompt
from botkit.stores import MemoryStore
from botkit.testing import FakeChannel, write_bot


class RecordingResponder:
    """Answers "answer N" and remembers every prompt it was given."""

    def __init__(self) -> None:
        self.prompts: list[Prompt] = []

    async def complete(self, prompt: Prompt) -> Completion:
        self.prompts.append(prompt)
        return Completion(text=f"answer {len(self.prompts)}", usage=Usage(10, 2), model="m")


def make(bot: BotDefinition, responder: object | None = None) -> tuple[Pipeline, FakeChannel]:
    pipeline = Pipeline(bot=bot, store=MemoryStore(), responder=responder or FaqResponder(bot))  # type: ignore[arg-type]
    return pipeline, FakeChannel(pipeline.handle, bot=bot.name)


async def test_an_faq_question_is_answered_offline(shop: BotDefinition) -> None:
    _, chat = make(shop)
    reply = await chat.say("What are your opening hours?")
    assert reply is not None
    assert reply.text == "We are open Monday to Friday, 9:00 to 17:00."
    assert reply.kind == "answer" and reply.in_reply_to == "1"


async def test_an_unknown_question_gets_the_fallback(shop: BotDefinition) -> None:
    _, chat = make(shop)
    reply = await chat.say("Who won the football match yesterday?")
    assert reply is not None and reply.kind == "fallback"
    assert "support team" in reply.text


async def test_both_turns_are_stored_and_sent_next_time(shop: BotDefinition) -> None:
    responder = RecordingResponder()
    pipeline, chat = make(shop, responder)
    await chat.say("first question")
    reply = await chat.say("second question")
    assert reply is not None and reply.text == "answer 2" and reply.usage.total_tokens == 12
    assert [m["content"] for m in responder.prompts[1].messages[1:]] == [
        "first question",
        "answer 1",
        "second question",
    ]
    stored = await pipeline.store.recent(chat.message("").conversation_key, 10)
    assert [t.content for t in stored] == [
        "first question",
        "answer 1",
        "second question",
        "answer 2",
    ]
    assert all(t.tokens > 0 for t in stored)


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
async def test_empty_messages_never_reach_the_model(shop: BotDefinition, text: str) -> None:
    responder = RecordingResponder()
    _, chat = make(shop, responder)
    assert await chat.say(text) is None
    assert responder.prompts == []


async def test_commands_never_reach_the_model_or_the_history(shop: BotDefinition) -> None:
    responder = RecordingResponder()
    pipeline, chat = make(shop, responder)
    start = await chat.say("/start")
    help_ = await chat.say("/help@ShopBot")
    assert start is not None and start.kind == "command" and "shop" in start.text
    assert help_ is not None and "/reset" in help_.text
    assert responder.prompts == []
    assert await pipeline.store.recent(chat.message("").conversation_key, 10) == []


async def test_reset_forgets_the_conversation(shop: BotDefinition) -> None:
    responder = RecordingResponder()
    _, chat = make(shop, responder)
    await chat.say("remember this")
    reset = await chat.say("/reset")
    assert reset is not None and "forgotten" in reset.text
    await chat.say("and now?")
    assert [m["role"] for m in responder.prompts[-1].messages] == ["system", "user"]


async def test_a_long_message_is_cut_with_a_notice(home: Path) -> None:
    write_bot(home, "short", settings="max_message_chars = 20\n")
    bot = BotHome(home).load_checked("short")
    responder = RecordingResponder()
    _, chat = make(bot, responder)
    reply = await chat.say("x" * 10_000)
    assert responder.prompts[0].messages[-1]["content"] == "x" * 20
    assert reply is not None and "first 20 characters" in reply.text


async def test_a_failing_responder_gets_the_fallback_and_keeps_the_question(
    shop: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        async def complete(self, prompt: Prompt) -> Completion:
            raise RuntimeError("the model is down")

    pipeline, chat = make(shop, Broken())
    with caplog.at_level(logging.ERROR):
        reply = await chat.say("when are you open?")
    assert reply is not None and "9:00 to 17:00" in reply.text  # the offline FAQ answer
    stored = await pipeline.store.recent(chat.message("").conversation_key, 10)
    assert [t.content for t in stored][0] == "when are you open?"
    assert "the model is down" in caplog.text


class GatedResponder:
    """Blocks each completion until the test releases it, to observe ordering."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = asyncio.Event()

    async def complete(self, prompt: Prompt) -> Completion:
        self.started.append(prompt.messages[-1]["content"])
        await self.release.wait()
        return Completion(text=f"re: {prompt.messages[-1]['content']}")


async def test_one_conversation_is_handled_in_order(shop: BotDefinition) -> None:
    responder = GatedResponder()
    pipeline, chat = make(shop, responder)
    first = asyncio.create_task(chat.say("one"))
    second = asyncio.create_task(chat.say("two"))
    await asyncio.sleep(0.05)
    assert responder.started == ["one"]  # "two" waits for "one" to finish
    responder.release.set()
    await asyncio.gather(first, second)
    assert responder.started == ["one", "two"]
    stored = await pipeline.store.recent(chat.message("").conversation_key, 10)
    assert [t.content for t in stored] == ["one", "re: one", "two", "re: two"]
    keeper = pipeline.store.__dict__["_lease_keeper"]
    assert len(keeper.local) == 0 and not keeper.held_locks  # none kept for an idle one


async def test_different_conversations_run_concurrently(shop: BotDefinition) -> None:
    responder = GatedResponder()
    pipeline = Pipeline(bot=shop, store=MemoryStore(), responder=responder)  # type: ignore[arg-type]
    chats = [FakeChannel(pipeline.handle, bot="shop", user_id=f"u{i}") for i in range(20)]
    tasks = [asyncio.create_task(c.say(f"q{i}")) for i, c in enumerate(chats)]
    await asyncio.sleep(0.05)
    assert sorted(responder.started) == sorted(f"q{i}" for i in range(20))
    responder.release.set()
    replies = await asyncio.gather(*tasks)
    assert [r.text for r in replies if r] == [f"re: q{i}" for i in range(20)]


def test_parse_command() -> None:
    assert parse_command("/reset") == "/reset"
    assert parse_command("/RESET@my_bot please") == "/reset"
    assert parse_command("/unknown") is None
    assert parse_command("reset") is None


class StreamingResponder:
    """Streams fixed deltas; optionally breaks off after `fail_after` of them."""

    def __init__(self, deltas: list[str], fail_after: int | None = None) -> None:
        self.deltas = deltas
        self.fail_after = fail_after

    async def complete(self, prompt: Prompt) -> Completion:
        raise AssertionError("the streaming path must not call complete()")

    async def stream(self, prompt: Prompt) -> AsyncIterator[str | Completion]:
        for i, delta in enumerate(self.deltas):
            if i == self.fail_after:
                raise ConnectionError("stream cut")
            yield delta
        yield Completion(text="".join(self.deltas), usage=Usage(3, 4))


async def collect(pipeline: Pipeline, text: str) -> tuple[list[str], Reply | None]:
    stream = pipeline.stream(FakeChannel(pipeline.handle, bot="shop").message(text))
    deltas = [delta async for delta in stream]
    return deltas, stream.reply


async def test_stream_yields_deltas_that_join_to_the_stored_reply(shop: BotDefinition) -> None:
    pipeline, chat = make(shop, StreamingResponder(["Hel", "lo ", "there"]))
    deltas, reply = await collect(pipeline, "hi")
    assert deltas == ["Hel", "lo ", "there"]
    assert reply is not None and reply.text == "Hello there" and reply.usage.total_tokens == 7
    stored = await pipeline.store.recent(chat.message("").conversation_key, 10)
    assert [t.content for t in stored] == ["hi", "Hello there"]


async def test_a_stream_broken_midway_keeps_the_text_and_says_so(shop: BotDefinition) -> None:
    pipeline, _ = make(shop, StreamingResponder(["Part one, ", "part two"], fail_after=1))
    deltas, reply = await collect(pipeline, "hi")
    assert deltas[0] == "Part one, " and "interrupted" in deltas[-1]
    assert reply is not None and reply.text == "".join(deltas)
    assert reply.error == "ConnectionError" and reply.finish_reason == "error"


async def test_a_stream_failing_at_once_gets_the_offline_answer(shop: BotDefinition) -> None:
    pipeline, _ = make(shop, StreamingResponder(["never"], fail_after=0))
    deltas, reply = await collect(pipeline, "how long does shipping take?")
    assert "".join(deltas) == "Parcels arrive in 2 to 4 working days."
    assert reply is not None and reply.error == "ConnectionError"


async def test_commands_and_empty_messages_stream_too(shop: BotDefinition) -> None:
    pipeline, _ = make(shop, StreamingResponder(["x"]))
    deltas, reply = await collect(pipeline, "/help")
    assert reply is not None and reply.kind == "command" and "".join(deltas) == reply.text
    assert await collect(pipeline, "  ") == ([], None)


async def test_listeners_see_every_reply_with_its_duration(shop: BotDefinition) -> None:
    seen: list[tuple[str, str, float]] = []
    pipeline = Pipeline(
        bot=shop,
        store=MemoryStore(),
        responder=FaqResponder(shop),
        listeners=[
            lambda message, reply, seconds: seen.append((message.text, reply.kind, seconds))
        ],
    )
    chat = FakeChannel(pipeline.handle, bot="shop")
    await chat.say("When are you open?")
    await chat.say("/help")
    await collect(pipeline, "something unrelated entirely")
    assert [(text, kind) for text, kind, _ in seen] == [
        ("When are you open?", "answer"),
        ("/help", "command"),
        ("something unrelated entirely", "fallback"),
    ]
    assert all(seconds >= 0 for *_, seconds in seen)


class PeekingResponder:
    """Looks in the store while it answers: what a crash at that moment would leave."""

    def __init__(self, store: MemoryStore, key: str) -> None:
        self.store = store
        self.key = key
        self.seen: list[list[str]] = []

    async def complete(self, prompt: Prompt) -> Completion:
        self.seen.append([t.content for t in await self.store.recent(self.key, 10)])
        return Completion(text="an answer")


async def test_the_question_is_stored_before_the_model_is_asked(shop: BotDefinition) -> None:
    store = MemoryStore()
    chat_key = FakeChannel(None, bot="shop").message("").conversation_key  # type: ignore[arg-type]
    responder = PeekingResponder(store, chat_key)
    pipeline = Pipeline(bot=shop, store=store, responder=responder)  # type: ignore[arg-type]
    chat = FakeChannel(pipeline.handle, bot="shop")
    await chat.say("is my question safe?")
    assert responder.seen == [["is my question safe?"]]


async def accepted_again(pipeline: Pipeline, chat: FakeChannel, text: str) -> tuple[object, object]:
    """A message accepted by a worker that then died: its inbox item, as taken up again."""
    message = chat.message(text, message_id="m-7")
    store = pipeline.store
    first = await pipeline.accept(message, address={})
    assert first is not None
    await store.inbox_later(first, delay=0)
    [again] = await store.inbox_take([first.channel])
    assert again.attempts == 2
    return message, again


async def test_a_message_taken_up_after_a_crash_is_stored_once(shop: BotDefinition) -> None:
    responder = RecordingResponder()
    pipeline, chat = make(shop, responder)
    message, item = await accepted_again(pipeline, chat, "where is my parcel?")
    # The dead worker had stored the question, not the answer.
    await pipeline._remember(message, None)  # type: ignore[arg-type]
    reply = await pipeline.handle(message, item=item)  # type: ignore[arg-type]
    assert reply is not None and reply.text == "answer 1"
    stored = await pipeline.store.recent(message.conversation_key, 10)
    assert [t.content for t in stored] == ["where is my parcel?", "answer 1"]
    # The prompt holds the question once.
    assert [m["content"] for m in responder.prompts[0].messages[1:]] == ["where is my parcel?"]


async def test_an_answer_stored_before_a_crash_is_said_again_not_asked_again(
    shop: BotDefinition,
) -> None:
    responder = RecordingResponder()
    pipeline, chat = make(shop, responder)
    message, item = await accepted_again(pipeline, chat, "where is my parcel?")
    await pipeline.handle(message)  # the dead worker got this far: both turns stored
    reply = await pipeline.handle(message, item=item)  # type: ignore[arg-type]
    assert reply is not None and reply.text == "answer 1"
    assert len(responder.prompts) == 1
    stored = await pipeline.store.recent(message.conversation_key, 10)
    assert [t.content for t in stored] == ["where is my parcel?", "answer 1"]


async def test_a_template_failing_at_run_time_gives_the_fallback(tmp_path: Path) -> None:
    write_bot(
        tmp_path,
        "b",
        # Passes `botkit check`, fails for user "bob" only: a division by zero.
        system="{{ 100 // (user.id | length - 3) }} Hello",
        settings="faq_answer_score = 1.0\n",
    )
    bot = BotHome(tmp_path).load_checked("b")
    pipeline, _ = make(bot, RecordingResponder())
    chat = FakeChannel(pipeline.handle, bot="b", user_id="bob")
    reply = await chat.say("hi")
    assert reply is not None and reply.kind == "fallback" and "support team" in reply.text
    assert (await chat.say("hi again")) is not None  # and the conversation goes on


async def test_stream_begins_before_the_answer_and_says_whether_the_bot_answers(
    shop: BotDefinition,
) -> None:
    pipeline, chat = make(shop)
    stream = pipeline.stream(chat.message("When are you open?"))
    assert await stream.begin() is True
    assert "".join([d async for d in stream]) == stream.reply.text  # type: ignore[union-attr]
    empty = pipeline.stream(chat.message("   "))
    assert await empty.begin() is False
    assert [d async for d in empty] == [] and empty.reply is None


async def test_a_message_another_worker_finished_is_not_stored_again(shop: BotDefinition) -> None:
    # A worker that stalled past its lease still holds its first copy of the item
    # (attempts 1) after another worker took the message over and answered it.
    responder = RecordingResponder()
    pipeline, chat = make(shop, responder)
    message = chat.message("where is my parcel?", message_id="m-9")
    item = await pipeline.accept(message, address={})
    assert item is not None and item.attempts == 1
    await pipeline.handle(message, item=item)  # the other worker, all the way through
    again = await pipeline.handle(message, item=item)  # the stalled one, late
    assert again is not None and again.text == "answer 1"
    assert len(responder.prompts) == 1
    stored = await pipeline.store.recent(message.conversation_key, 10)
    assert [t.content for t in stored] == ["where is my parcel?", "answer 1"]
