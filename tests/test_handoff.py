"""Handing conversations to people: the ways in, the relay, and the ways back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from botkit.app import BotApp
from botkit.handoff import Handoffs
from botkit.home import BotDefinition, BotHome
from botkit.messages import Reply
from botkit.settings import Settings
from botkit.stores.base import Store
from botkit.testing import FakeChannel, FakeDesk, FakeLLM, faq_file, write_bot
from tests.conftest import SHOP_FAQ

HANDOFF = '[handoff]\ndesk = "webhook"\nwebhook_url = "https://desk.example.com/hook"\n'
PERSON = {
    "person.md": faq_file(
        "Can I talk to a person?",
        "Of course.",
        questions=["I want a human", "speak to an agent"],
        handoff=True,
    )
}


@dataclass
class Running:
    app: BotApp
    desk: FakeDesk
    chat: FakeChannel

    @property
    def store(self) -> Store:
        return self.app.store

    @property
    def handoffs(self) -> Handoffs:
        return self.app.handoffs

    async def turns(self) -> list[tuple[str, str]]:
        key = self.chat.message("").conversation_key
        return [(t.role, t.content) for t in await self.store.recent(key, 50)]


def load(
    home: Path, name: str = "shop", *, settings: str = HANDOFF, faq: dict[str, str] | None = None
) -> BotDefinition:
    write_bot(home, name, faq={**SHOP_FAQ, **(faq or {})}, settings=settings)
    return BotHome(home).load_checked(name)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    bot = load(tmp_path, faq=PERSON)
    desk = FakeDesk()
    settings = Settings(store={"url": "memory://"})
    async with BotApp(settings=settings, bots=[bot], desks={"shop": desk}) as app:
        chat = FakeChannel(app.pipelines["shop"].handle, bot="shop", user_name="Ann")
        yield Running(app, desk, chat)


async def say(running: Running, text: str) -> Reply:
    reply = await running.chat.say(text)
    assert reply is not None
    return reply


async def test_human_hands_off_and_the_desk_sees_the_transcript(running: Running) -> None:
    await say(running, "When are you open?")
    reply = await say(running, "/human")
    assert reply.kind == "handoff" and "person" in reply.text
    [(handoff, transcript)] = running.desk.shown
    assert handoff.trigger == "command" and handoff.state == "waiting"
    assert handoff.user_name == "Ann" and handoff.channel == "test"
    assert [t.content for t in transcript][-3:] == [
        "When are you open?",
        "We are open Monday to Friday, 9:00 to 17:00.",
        "/human",
    ]
    stored = await running.store.handoff_current(handoff.conversation)
    assert stored is not None and stored.desk_ref == f"fake/{handoff.id}"


async def test_agent_is_the_same_command(running: Running) -> None:
    assert (await say(running, "/agent")).kind == "handoff"


async def test_while_handed_off_messages_go_to_the_person_not_the_model(running: Running) -> None:
    await say(running, "/human")
    reply = await say(running, "When are you open?")
    assert reply.kind == "relayed" and reply.text == ""
    handoff = running.desk.shown[0][0]
    assert running.desk.relayed == [(handoff.id, "When are you open?")]
    assert (await running.turns())[-1] == ("user", "When are you open?")


async def test_a_handoff_faq_snippet_hands_off(running: Running) -> None:
    reply = await say(running, "I want a human please")
    assert reply.kind == "handoff"
    assert running.desk.shown[0][0].trigger == "faq"


async def test_the_nth_fallback_in_a_row_hands_off(tmp_path: Path) -> None:
    bot = load(tmp_path, settings=HANDOFF + "after_fallbacks = 2\n")
    desk = FakeDesk()
    async with BotApp(
        settings=Settings(store={"url": "memory://"}), bots=[bot], desks={"shop": desk}
    ) as app:
        chat = FakeChannel(app.pipelines["shop"].handle, bot="shop")
        first = await chat.say("xyzzy plugh")
        assert first is not None and first.kind == "fallback"
        second = await chat.say("frobnicate the gizmo")
        assert second is not None and second.kind == "handoff"
        assert desk.shown[0][0].trigger == "fallbacks"


async def test_an_answer_between_fallbacks_starts_the_count_again(tmp_path: Path) -> None:
    bot = load(tmp_path, settings=HANDOFF + "after_fallbacks = 2\n")
    async with BotApp(
        settings=Settings(store={"url": "memory://"}), bots=[bot], desks={"shop": FakeDesk()}
    ) as app:
        chat = FakeChannel(app.pipelines["shop"].handle, bot="shop")
        kinds = [
            (await chat.say(text)).kind  # type: ignore[union-attr]
            for text in ("xyzzy plugh", "When are you open?", "frobnicate the gizmo")
        ]
        assert kinds == ["fallback", "answer", "fallback"]


async def test_without_a_handoff_table_human_gets_the_fallback(
    home: Path, shop: BotDefinition
) -> None:
    async with BotApp(settings=Settings(store={"url": "memory://"}), bots=[shop]) as app:
        chat = FakeChannel(app.pipelines["shop"].handle, bot="shop")
        reply = await chat.say("/human")
        assert reply is not None and reply.kind == "fallback" and "support team" in reply.text
        assert await app.store.handoffs_open() == []
        assert "/human" not in (await chat.say("/help")).text  # type: ignore[union-attr]


async def test_help_lists_human_when_a_person_can_take_over(running: Running) -> None:
    assert "/human" in (await say(running, "/help")).text


async def test_take_say_resolve_reach_the_customer_as_turns(running: Running) -> None:
    await say(running, "/human")
    handoff = running.desk.shown[0][0]
    taken = await running.handoffs.take(handoff.id, agent_id="U1", agent_name="Anna")
    assert taken.outcome == "done" and taken.handoff is not None
    assert taken.handoff.state == "human" and taken.handoff.agent_name == "Anna"
    said = await running.handoffs.say(handoff.id, agent_id="U1", agent_name="Anna", text="Hi!")
    assert said.outcome == "done"
    resolved = await running.handoffs.resolve(handoff.id)
    assert resolved.outcome == "done"
    turns = await running.store.recent(running.chat.message("").conversation_key, 50)
    assert [(t.role, t.kind, t.name) for t in turns[-3:]] == [
        ("assistant", "joined", None),
        ("agent", None, "Anna"),
        ("assistant", "resolved", None),
    ]
    assert "Anna" in turns[-3].content
    assert [c.state for c in running.desk.changes] == ["human", "resolved"]
    # Back with the bot: the next question is answered.
    assert (await say(running, "When are you open?")).kind == "answer"


async def test_deliveries_wait_in_the_inbox_for_the_customers_channel(running: Running) -> None:
    await say(running, "/human")
    handoff = running.desk.shown[0][0]
    await running.handoffs.say(handoff.id, agent_id="U1", agent_name="Anna", text="Hello")
    items = await running.store.inbox_take(["test/shop"])
    payloads = [(i.payload["turn"], i.payload["text"], i.payload["agent"]) for i in items]
    assert payloads[0][0] == "joined"
    assert payloads[1] == ("agent", "Hello", "Anna")


async def test_replying_without_taking_takes_it(running: Running) -> None:
    await say(running, "/human")
    handoff = running.desk.shown[0][0]
    await running.handoffs.say(handoff.id, agent_id="U1", agent_name="Anna", text="Hi")
    current = await running.store.handoff_get(handoff.id)
    assert current is not None and current.state == "human" and current.agent_id == "U1"


async def test_two_people_taking_at_once_make_one_owner(running: Running) -> None:
    await say(running, "/human")
    handoff = running.desk.shown[0][0]
    results = await asyncio.gather(
        *(
            running.handoffs.take(handoff.id, agent_id=f"U{n}", agent_name=f"Agent {n}")
            for n in range(5)
        )
    )
    owners = {r.handoff.agent_id for r in results if r.handoff is not None}
    assert len(owners) == 1
    joined = [t for t in await running.store.recent(handoff.conversation, 50) if t.kind == "joined"]
    assert len(joined) == 1


async def test_actions_on_an_unknown_or_finished_handoff_change_nothing(running: Running) -> None:
    assert (
        await running.handoffs.take("h_nope", agent_id="U1", agent_name="A")
    ).outcome == "unknown"
    await say(running, "/human")
    handoff = running.desk.shown[0][0]
    await running.handoffs.resolve(handoff.id)
    before = await running.turns()
    assert (await running.handoffs.resolve(handoff.id)).outcome == "closed"
    assert (
        await running.handoffs.take(handoff.id, agent_id="U", agent_name="A")
    ).outcome == "closed"
    said = await running.handoffs.say(handoff.id, agent_id="U", agent_name="A", text="late")
    assert said.outcome == "closed"
    assert await running.turns() == before


async def test_a_handoff_nobody_takes_times_out(tmp_path: Path) -> None:
    bot = load(tmp_path, settings=HANDOFF + 'timeout = "1s"\n')
    now = [1000.0]
    async with BotApp(
        settings=Settings(store={"url": "memory://"}), bots=[bot], desks={"shop": FakeDesk()}
    ) as app:
        handoffs = Handoffs(
            store=app.store, bots=[bot], desks={"shop": FakeDesk()}, clock=lambda: now[0]
        )
        app.pipelines["shop"].handoffs = handoffs
        chat = FakeChannel(app.pipelines["shop"].handle, bot="shop")
        await chat.say("/human")
        assert await handoffs.expire() == 0
        now[0] += 2
        assert await handoffs.expire() == 1
        assert await handoffs.expire() == 0
        turns = await app.store.recent(chat.message("").conversation_key, 10)
        assert turns[-1].kind == "timeout" and "nobody" in turns[-1].content
        assert (await chat.say("When are you open?")).kind == "answer"  # type: ignore[union-attr]


async def test_reset_during_a_handoff_ends_it_quietly(running: Running) -> None:
    await say(running, "/human")
    handoff = running.desk.shown[0][0]
    assert (await say(running, "/reset")).kind == "command"
    ended = await running.store.handoff_get(handoff.id)
    assert ended is not None and ended.outcome == "cancelled"
    assert await running.turns() == []


async def test_the_model_sees_what_the_person_said(tmp_path: Path) -> None:
    bot = load(tmp_path)
    llm = FakeLLM("Glad to help.")
    settings = Settings(store={"url": "memory://"}, llm={"base_url": "http://llm.invalid/v1"})
    async with BotApp(
        settings=settings, bots=[bot], transport=llm.transport, desks={"shop": FakeDesk()}
    ) as app:
        chat = FakeChannel(app.pipelines["shop"].handle, bot="shop")
        await chat.say("/human")
        handoff = (await app.store.handoffs_open())[0]
        await app.handoffs.say(
            handoff.id, agent_id="U1", agent_name="Anna", text="Your refund is on its way."
        )
        await app.handoffs.resolve(handoff.id)
        await chat.say("Thanks! Anything else?")
        messages = llm.requests[-1]["messages"]
        assert {"role": "assistant", "content": "Your refund is on its way."} in messages


async def test_botkit_handoffs_lists_the_open_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botkit.cli import main

    bot = load(tmp_path)
    settings = Settings(home=tmp_path)  # the default SQLite store in the home
    async with BotApp(settings=settings, bots=[bot], desks={"shop": FakeDesk()}) as app:
        ann = FakeChannel(app.pipelines["shop"].handle, bot="shop", user_id="ann", user_name="Ann")
        bob = FakeChannel(app.pipelines["shop"].handle, bot="shop", user_id="bob")
        await ann.say("/human")
        await bob.say("/human")
        taken = (await app.store.handoffs_open())[0]
        await app.handoffs.take(taken.id, agent_id="U1", agent_name="Anna")
    monkeypatch.chdir(tmp_path)
    assert await asyncio.to_thread(main, ["handoffs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "id",
        "bot",
        "state",
        "agent",
        "age",
        "customer",
        "channel",
        "reason",
    ]
    rows = [line.split() for line in lines[1:]]
    assert [(r[2], r[3], r[5]) for r in rows] == [("human", "Anna", "Ann"), ("waiting", "-", "bob")]
    assert all(r[4].endswith("s") for r in rows)  # seconds old
    assert await asyncio.to_thread(main, ["handoffs", "other"]) == 0
    assert capsys.readouterr().out == "no open handoffs for other\n"


async def test_handoffs_are_counted_in_the_metrics(running: Running) -> None:
    await say(running, "/human")
    handoff = running.desk.shown[0][0]
    await running.handoffs.take(handoff.id, agent_id="U1", agent_name="Anna")
    text = running.app.metrics.render().decode()
    assert 'botkit_handoffs_total{bot="shop",trigger="command"} 1.0' in text
    assert 'botkit_handoff_wait_seconds_count{bot="shop",outcome="taken"} 1.0' in text
