"""`botkit transcripts`: conversations with what became of each message, the votes and
what people wrote, as JSON Lines and Markdown."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pytest

from botkit.cli import main
from botkit.feedback import Votes
from botkit.handoff import Handoffs
from botkit.home import BotHome
from botkit.llm.offline import FaqResponder
from botkit.outcomes import OutcomeRecorder
from botkit.pipeline import Pipeline
from botkit.stores import MemoryStore
from botkit.testing import FakeChannel, FakeDesk, write_bot
from botkit.transcripts import render, transcripts
from tests.conftest import SHOP_FAQ

DESK = '[handoff]\ndesk = "slack"\nslack_channel = "C0123456789"\n'


async def test_a_conversation_with_outcomes_votes_and_a_person(tmp_path: Path) -> None:
    write_bot(tmp_path, "shop", faq=SHOP_FAQ, settings=DESK)
    bot = BotHome(tmp_path).load_checked("shop")
    store = MemoryStore()
    recorder = OutcomeRecorder(store)
    handoffs = Handoffs(store=store, bots=[bot], desks={"shop": FakeDesk()})
    pipeline = Pipeline(
        bot=bot,
        store=store,
        responder=FaqResponder(bot),
        listeners=[recorder.observe],
        handoffs=handoffs,
    )
    chat = FakeChannel(pipeline.handle, bot="shop", channel="web", user_id="ann")
    await chat.say("When are you open?")
    await Votes(store, {"shop": pipeline}).cast(
        bot="shop",
        channel="web",
        conversation_id="ann",
        message_id="1",
        user="ann",
        score=-1,
        comment="I asked about Sundays",
    )
    handed = await chat.say("/human")
    assert handed is not None and handed.handoff is not None
    await handoffs.say(handed.handoff, agent_id="U1", agent_name="Anna", text="Closed on Sundays.")
    await recorder.aclose()

    [transcript] = [t async for t in transcripts(store, "shop")]
    data = json.loads(render(transcript, "jsonl"))
    assert (data["conversation"], data["channel"], data["users"]) == (
        "shop/web/ann",
        "web",
        ["ann"],
    )
    roles = [(m["role"], m.get("kind"), m.get("name")) for m in data["messages"]]
    assert roles == [
        ("user", None, None),
        ("assistant", "answer", None),
        ("user", None, None),
        ("assistant", "handoff", None),
        ("assistant", "joined", None),
        ("agent", None, "Anna"),
    ]
    first, answer = data["messages"][:2]
    assert first["outcome"]["kind"] == "faq" and first["outcome"]["faq"] == "faq/hours.md"
    assert answer["feedback"] == {"score": -1, "comment": "I asked about Sundays"}
    assert data["messages"][2]["outcome"]["kind"] == "handoff"

    markdown = render(transcript, "md")
    assert markdown.startswith("## shop/web/ann\n\nweb · ann · ")
    assert "_answered from the FAQ, faq/hours.md (" in markdown
    assert '_👎 "I asked about Sundays"_' in markdown
    assert "**Anna (support)**" in markdown and "> Closed on Sundays." in markdown

    assert [t async for t in transcripts(store, "shop", user="bob")] == []
    later = [t async for t in transcripts(store, "shop", since=time.time() + 60)]
    assert later == []


def test_the_command_exports_jsonl_and_filters_by_user_and_day(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for user in ("ann", "bob"):
        monkeypatch.setattr(sys, "stdin", io.StringIO("When are you open?\n"))
        assert main(["chat", "shop", "--user", user]) == 0
    capsys.readouterr()
    assert main(["transcripts", "shop"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["users"] for line in lines] == [["ann"], ["bob"]]
    assert main(["transcripts", "shop", "--user", "bob", "--format", "md"]) == 0
    assert capsys.readouterr().out.startswith("## shop/console/bob\n")
    assert main(["transcripts", "shop", "--since", "2999-01-01"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "shop: no conversations to export" in captured.err
    with pytest.raises(SystemExit):
        main(["transcripts", "shop", "--since", "last week"])
    assert "is not a date such as" in capsys.readouterr().err
