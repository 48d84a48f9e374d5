"""Markdown answers as Slack mrkdwn, and cut into messages `chat.update` accepts."""

from __future__ import annotations

import pytest

from botkit.adapters.slack.format import UPDATE_LIMIT, to_mrkdwn, to_pieces


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("**bold** and __bold__", "*bold* and *bold*"),
        ("*italic* and _italic_", "_italic_ and _italic_"),
        ("~~gone~~", "~gone~"),
        ("***both***", "_*both*_"),
        ("**bold with *italic* inside**", "*bold with _italic_ inside*"),
        ("`x < y`", "`x &lt; y`"),
        ("[the docs](https://example.com/docs)", "<https://example.com/docs|the docs>"),
        ("[**bold** link](https://example.com)", "<https://example.com|bold link>"),
        ("<https://example.com>", "<https://example.com>"),
        ("[a](https://e.com/?q=1&r=2|3)", "<https://e.com/?q=1&amp;r=2%7C3|a>"),
        ("[write](mailto:help@example.com)", "<mailto:help@example.com|write>"),
        ("[local](/relative/path)", "local"),
        ("![logo](https://example.com/logo.png)", "<https://example.com/logo.png|logo>"),
        ("# Heading", "*Heading*"),
        ("## A **bold** heading", "*A bold heading*"),
        ("Tom & Jerry <3 > 2", "Tom &amp; Jerry &lt;3 &gt; 2"),
        ("<!channel> <@U123> <b>hi</b>", "&lt;!channel&gt; &lt;@U123&gt; &lt;b&gt;hi&lt;/b&gt;"),
        ("line one\nline two", "line one\nline two"),
        ("---", "───"),
    ],
)
def test_markdown_becomes_mrkdwn(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


def test_lists_keep_their_markers_and_nesting() -> None:
    markdown = (
        "Steps:\n\n1. Open **Settings**\n2. Choose *Billing*\n   - Plans\n   - Invoices\n\n- a\n- b"
    )
    assert to_mrkdwn(markdown) == (
        "Steps:\n\n1. Open *Settings*\n2. Choose _Billing_\n    • Plans\n    • Invoices\n\n• a\n• b"
    )


def test_an_ordered_list_keeps_its_start() -> None:
    assert to_mrkdwn("3. three\n4. four") == "3. three\n4. four"


def test_code_blocks_lose_the_language_and_keep_their_text_escaped() -> None:
    markdown = "Try:\n\n```python\nif a < b and c & d:\n    print('*not bold*')\n```\n\nDone."
    assert to_mrkdwn(markdown) == (
        "Try:\n\n```\nif a &lt; b and c &amp; d:\n    print('*not bold*')\n```\n\nDone."
    )


def test_quotes_are_marked_on_every_line() -> None:
    assert to_mrkdwn("> first\n> second\n>\n> third\n\nafter") == (
        "> first\n> second\n>\n> third\n\nafter"
    )


def test_paragraphs_stay_apart() -> None:
    assert to_mrkdwn("One.\n\nTwo.\n\n\n\nThree.") == "One.\n\nTwo.\n\nThree."


def test_a_short_answer_is_one_piece() -> None:
    assert to_pieces("**Hi**") == ["*Hi*"]


def test_a_long_answer_is_cut_under_the_limit_and_loses_nothing() -> None:
    paragraphs = [f"Paragraph {n}: " + "words & more words " * 25 for n in range(40)]
    markdown = "\n\n".join(paragraphs)
    pieces = to_pieces(markdown)
    assert len(pieces) > 2
    assert all(len(piece) <= UPDATE_LIMIT for piece in pieces)
    assert " ".join(pieces).split() == to_mrkdwn(markdown).split()
    assert pieces[1].startswith("Paragraph")  # cut at paragraph breaks


def test_a_code_block_cut_in_two_is_closed_and_reopened() -> None:
    code = "\n".join(f"line_{n} = {n}  # some code" for n in range(300))
    pieces = to_pieces(f"Here:\n\n```\n{code}\n```", limit=2000)
    assert len(pieces) >= 4
    for piece in pieces[1:]:
        assert piece.startswith("```")
    for piece in pieces:
        assert piece.count("```") == 2
        assert len(piece) <= 2000


def test_escaping_that_grows_the_text_still_fits() -> None:
    pieces = to_pieces("a < b & c > d. " * 1000)
    assert all(len(piece) <= UPDATE_LIMIT for piece in pieces)
    assert "".join(pieces).count("&lt;") == 1000
