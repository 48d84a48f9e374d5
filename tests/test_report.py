"""`botkit report` on a generated week: the numbers, and the questions the bot could not
answer grouped into the FAQ entries to write next."""

from __future__ import annotations

import io
import itertools
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from botkit.cli import main
from botkit.home import BotDefinition
from botkit.llm.offline import FaqResponder
from botkit.messages import Feedback
from botkit.outcomes import OutcomeRecorder
from botkit.pipeline import Pipeline
from botkit.report import gather
from botkit.stores import MemoryStore, Store
from botkit.stores.base import UsageRecord
from botkit.testing import FakeChannel

NOW = datetime(2026, 11, 29, 18, 0, tzinfo=UTC).timestamp()
DAY = 86400.0

ANSWERED = [
    "When are you open?",
    "What are your opening hours?",
    "when are you open on saturday",
    "opening hours please",
    "are you open today?",
]
GIFT_CARDS = [
    "Do you sell gift cards?",
    "can I buy a gift card for my sister",
    "gift cards?",
    "Where do I get a gift card",
]
STUDENTS = [
    "Is there a student discount?",
    "discount for students",
    "do students get a discount",
]


async def generated_week(store: Store, shop: BotDefinition) -> None:
    """A week of conversations through the pipeline: 30 answered questions about opening
    hours (two of them voted down), 12 about gift cards and 7 about a student discount,
    which the FAQ does not cover."""
    clock = [NOW - 6.5 * DAY]
    recorder = OutcomeRecorder(store, clock=lambda: clock[0])
    pipeline = Pipeline(
        bot=shop, store=store, responder=FaqResponder(shop), listeners=[recorder.observe]
    )
    users = itertools.count(1)
    asked = (
        [q for q, _ in zip(itertools.cycle(ANSWERED), range(30), strict=False)]
        + [q for q, _ in zip(itertools.cycle(GIFT_CARDS), range(12), strict=False)]
        + [q for q, _ in zip(itertools.cycle(STUDENTS), range(7), strict=False)]
    )
    disliked = 0
    for number, question in enumerate(asked):
        clock[0] = NOW - 6.5 * DAY + number * (6 * DAY / len(asked))
        user = f"u-{next(users)}"
        chat = FakeChannel(pipeline.handle, bot="shop", channel="web", user_id=user)
        reply = await chat.say(question)
        assert reply is not None
        if question in ANSWERED:
            assert reply.kind == "answer", question
            if disliked < 2:
                disliked += 1
                await store.put_feedback(vote(reply.conversation_id, "1", user, -1, clock[0]))
            elif number % 3 == 0:
                await store.put_feedback(vote(reply.conversation_id, "1", user, 1, clock[0]))
        else:
            assert reply.kind == "fallback", question
    await recorder.aclose()
    day = datetime.fromtimestamp(NOW, UTC).date().isoformat()
    await store.add_usage([UsageRecord(day, "shop", "u-1", "shop/web/u-1", "m", 1000, 200)])


def vote(conversation_id: str, message_id: str, user: str, score: int, at: float) -> Feedback:
    return Feedback(
        bot="shop",
        channel="web",
        conversation=f"shop/web/{conversation_id}",
        message_id=message_id,
        user=user,
        score=score,
        at=at,
    )


async def test_the_missing_topics_are_the_top_groups_with_their_counts(
    shop: BotDefinition,
) -> None:
    store = MemoryStore()
    await generated_week(store, shop)
    report = await gather(store, shop, days=7, now=NOW)
    assert report.conversations == 49 and report.messages == 49
    assert report.outcomes == {"faq": 30, "fallback": 19}
    assert report.resolved == 28  # 30 answered, 2 of them voted down
    assert (report.thumbs_down, report.handed_off) == (2, 0)
    first, second, *rest = report.groups
    assert first.count == 12 and first.reasons["fallback"] == 12
    assert all("gift card" in e.lower() for e in first.examples)
    assert second.count == 7 and second.reasons["fallback"] == 7
    assert all("student" in e.lower() for e in second.examples)
    # The two answers voted down are about opening hours: one group, next to its snippet.
    [third] = rest
    assert (third.count, third.reasons["thumbs_down"]) == (2, 2)
    assert third.closest is not None and third.closest.source == "faq/hours.md"
    assert first.closest is None and second.closest is None
    assert len(report.per_day) == 7 and sum(d.messages for d in report.per_day) == 49
    assert report.tokens == 1200


async def test_the_terminal_and_json_reports(shop: BotDefinition) -> None:
    store = MemoryStore()
    await generated_week(store, shop)
    report = await gather(store, shop, days=7, now=NOW)
    text = "\n".join(report.lines())
    assert "Conversations       49    resolved by the bot   57%  (28)" in text
    assert '  1.   12×  "gift cards?" · "' in text  # its most typical question first
    assert "          fallback 12 · no FAQ snippet comes close" in text
    data = json.loads(json.dumps(report.to_json()))
    assert data["groups"][0]["count"] == 12 and data["conversations"] == 49


async def test_no_conversations_says_so(shop: BotDefinition) -> None:
    report = await gather(MemoryStore(), shop, days=3, now=NOW)
    assert report.empty
    assert report.lines() == [
        "shop: no conversations in the last 3 days (2026-11-27 to 2026-11-29, UTC)"
    ]


def test_the_command_on_a_bot_with_no_data(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "shop", "--days", "3"]) == 0
    assert capsys.readouterr().out.startswith("shop: no conversations in the last 3 days (")


def test_the_command_after_a_chat_prints_json_and_writes_the_page(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("When are you open?\nDo you sell gift cards?\n"))
    assert main(["chat", "shop", "--user", "ann"]) == 0
    capsys.readouterr()
    page = home / "report.html"
    assert main(["report", "shop", "--json", "--html", str(page)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["messages"] == 2 and data["outcomes"] == {"faq": 1, "fallback": 1}
    assert data["groups"][0]["examples"] == ["Do you sell gift cards?"]
    assert page.read_text("utf-8").count("<svg") == 4


def test_without_the_report_extra_html_names_the_pip_command(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert main(["report", "shop", "--html", str(home / "r.html")]) == 1
    assert capsys.readouterr().err == (
        "--html: the HTML report draws its charts with matplotlib: pip install 'botkit[report]'\n"
    )
    assert not (home / "r.html").exists()
