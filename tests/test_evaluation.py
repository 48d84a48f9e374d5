"""`botkit eval`: retrieval quality of a bot's own FAQ folder."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from botkit.cli import main
from botkit.evaluation import leave_one_out
from botkit.home import BotHome
from botkit.testing import faq_file, write_bot

REPO = Path(__file__).resolve().parent.parent

# Two snippets about cancelling that share their words: they must come out as the pair
# that collides most, ahead of the one-off loss between shipping and hours.
COLLIDING = {
    "cancel-order.md": faq_file(
        "How do I cancel an order?",
        "Open Orders and choose Cancel order.",
        questions=["cancel my order", "stop an order before it ships", "order cancellation"],
    ),
    "cancel-subscription.md": faq_file(
        "How do I cancel my subscription?",
        "Open Subscriptions and choose Cancel order.",
        questions=[
            "cancel my subscription order",
            "stop the monthly order",
            "cancel the order that repeats",
        ],
    ),
    "hours.md": faq_file(
        "When are you open?",
        "Monday to Friday, 9 to 5.",
        questions=["opening hours", "are you open on Sunday"],
        tags=["hours"],
    ),
    "shipping.md": faq_file(
        "How long does shipping take?",
        "Two to four days.",
        questions=["delivery time", "when will my parcel arrive"],
        tags=["delivery"],
    ),
    "zebra.md": faq_file("Do you sell stripes?", "Yes, in black and white.", questions=["zebra"]),
}


@pytest.fixture
def colliding(tmp_path: Path) -> Path:
    write_bot(tmp_path, "shop", faq=COLLIDING)
    return tmp_path


def test_the_colliding_pair_is_named_first(
    colliding: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "shop"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "shop: 11 questions for 5 snippets, each asked with its own wording left out of the index"
    )
    assert lines[1] == "top-1     0.45  (5/11)"
    assert lines[2] == "top-3     0.82  (9/11)"
    assert lines[3].startswith("answered  0.36  (4/11) offline")
    start = lines.index("Collisions (the right snippet lost, and to which):")
    assert lines[start + 1] == (
        '  2×  cancel-order lost to cancel-subscription: "cancel my order"; '
        '"stop an order before it ships"'
    )
    assert lines[start + 2].startswith("  2×  cancel-subscription lost to cancel-order: ")
    assert lines[start + 3].startswith("  1×  shipping lost to hours: ")
    assert "Never ranked first for their own questions: zebra" in lines


def test_leave_one_out_removes_the_querys_own_wording(colliding: Path) -> None:
    # "zebra" appears only as zebra.md's alternative question: asked with it left out,
    # nothing matches; against the whole index it would trivially find itself.
    report = leave_one_out(BotHome(colliding).load("shop"))
    [zebra] = [r for r in report.rankings if r.query.expected == "zebra"]
    assert (zebra.rank, zebra.first) == (None, None)
    assert [q.question for q in report.unmatched()] == ["zebra"]
    assert BotHome(colliding).load("shop").faq.search("zebra", top_k=1)[0].snippet.source == (
        "faq/zebra.md"
    )


def test_json_for_ci(colliding: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "shop", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["bot"], report["source"], report["snippets"], report["queries"]) == (
        "shop",
        "leave-one-out",
        5,
        11,
    )
    assert (report["top1"], report["top3"]) == (0.4545, 0.8182)
    assert report["collisions"][0] == {
        "expected": "cancel-order",
        "ranked_first": "cancel-subscription",
        "count": 2,
        "questions": ["cancel my order", "stop an order before it ships"],
    }
    assert report["never_first"] == ["zebra"]
    first = report["results"][0]
    assert set(first) == {"question", "expected", "rank", "ranked_first", "confidence"}


def test_real_questions_from_a_csv_file(
    colliding: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (colliding / "q.csv").write_text(
        "question,expected_snippet\n"
        "Can I cancel my order?,cancel-order\n"
        '"When do you open, on Saturdays?",faq/hours.md\n'
        "\n"
        "where is my parcel,shipping\n",
        "utf-8",
    )
    assert main(["eval", "shop", "--queries", "q.csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        "shop: 3 questions for 5 snippets, from q.csv",
        "top-1     1.00  (3/3)",
        "top-3     1.00  (3/3)",
    ]
    assert lines[-1] == "Not evaluated (no query): cancel-subscription, zebra"


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("question,expected_snippet\nhi,hour\n", "q.csv:2: no FAQ snippet 'hour' (did you mean"),
        ("hi,hours,extra\n", "q.csv:1: expected two columns: question,expected_snippet"),
        ("hi,\n", "q.csv:1: expected two columns"),
        ("question,expected_snippet\n", "q.csv: no questions"),
    ],
)
def test_a_bad_queries_file_is_exit_2_with_file_and_line(
    colliding: Path, capsys: pytest.CaptureFixture[str], rows: str, expected: str
) -> None:
    (colliding / "q.csv").write_text(rows, "utf-8")
    assert main(["eval", "shop", "--queries", "q.csv"]) == 2
    assert capsys.readouterr().err.startswith(expected)


def test_too_little_to_measure_says_what_it_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hours = faq_file("When are you open?", "Nine to five.", questions=["opening hours"])
    write_bot(tmp_path, "one", faq={"hours.md": hours})
    plain = {"a.md": faq_file("Refunds?", "Within a month."), "b.md": faq_file("Hours?", "Nine.")}
    write_bot(tmp_path, "plain", faq=plain)
    assert main(["eval", "one"]) == 0
    assert capsys.readouterr().out == (
        "one: botkit eval needs at least two FAQ snippets to tell apart (it has 1); "
        "add files under faq/\n"
    )
    assert main(["eval", "plain"]) == 0
    assert "add 'questions: [...]' to their front matter" in capsys.readouterr().out
    assert main(["eval", "plain", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["needs"].startswith("plain: botkit eval asks")


def test_the_demo_bot_finds_the_opening_hours_for_the_readmes_question(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "q.csv").write_text("When are you open?,hours\n", "utf-8")
    home = ["--home", str(REPO)]
    assert main(["eval", "nimbus", "--queries", str(tmp_path / "q.csv"), "--json", *home]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["top1"], report["answered"]) == (1.0, 1.0)
    monkeypatch.setattr(sys, "stdin", io.StringIO("When are you open?\n"))
    monkeypatch.setenv("BOTKIT_STORE_URL", "memory://")
    assert main(["chat", "nimbus", *home]) == 0
    assert "Monday to Friday, 8:00–18:00 CET" in capsys.readouterr().out
