"""Markdown → Telegram HTML, split under Telegram's limit; checked with the fake server's
HTML rules (known tags, balanced, escaped, at most 4096 characters shown)."""

from __future__ import annotations

import random
import re

import pytest

from botkit.adapters.telegram.format import MESSAGE_LIMIT, Piece, to_html, to_pieces
from tests.adapters.telegram_api import utf16_length, visible_text


def accepted(piece: Piece) -> str:
    """What Telegram would show for the piece; fails the test if it would refuse it."""
    shown = visible_text(piece.html, "HTML")
    assert shown == piece.text
    assert 0 < utf16_length(shown) <= MESSAGE_LIMIT
    return shown


def words(text: str) -> list[str]:
    return text.split()


def test_markdown_becomes_telegram_html() -> None:
    markdown = (
        "# Opening hours\n\n"
        "We are open **Monday** to *Friday*, ~~not~~ on `weekends`.\n"
        "See [our site](https://example.com/hours?a=1&b=2).\n\n"
        "- one\n- two\n  1. nested\n\n"
        "> a quote\n\n"
        "```python\nif a < b and c > d:\n    pass\n```"
    )
    assert to_html(markdown) == (
        "<b>Opening hours</b>\n\n"
        "We are open <b>Monday</b> to <i>Friday</i>, <s>not</s> on <code>weekends</code>.\n"
        'See <a href="https://example.com/hours?a=1&amp;b=2">our site</a>.\n\n'
        "• one\n• two\n   1. nested\n\n"
        "<blockquote>a quote</blockquote>\n\n"
        '<pre><code class="language-python">if a &lt; b and c &gt; d:\n    pass</code></pre>'
    )


SPECIALS = "Price: 5 * 3 = 15! _Really_? (yes) [maybe] {ok} #1 +2 -3 |x| ~y~ a.b > c < d & e"


def test_characters_markdown_v2_would_need_escaped_pass_through() -> None:
    (piece,) = to_pieces(SPECIALS)
    shown = accepted(piece)
    assert "5 * 3 = 15!" in shown and "(yes) [maybe] {ok} #1 +2 -3 |x| ~y~" in shown
    assert "a.b > c < d & e" in shown
    assert "<i>Really</i>" in piece.html and "&lt; d &amp; e" in piece.html


def test_the_issue_s_character_soup_is_accepted() -> None:
    (piece,) = to_pieces("_*[]()~>#+-=|{}.! and again: \\_\\*\\[\\]\\(\\)~>#+-=|{}.!")
    shown = accepted(piece)
    assert shown.endswith("_*[]()~>#+-=|{}.!")  # the escaped copy, every character kept
    assert "~>#+-=|{}.!" in shown.split(" and again")[0]


@pytest.mark.parametrize(
    "markdown",
    [
        "**bold that never ends",
        "_italic that never ends",
        "`code that never ends",
        "[a link that never ends](",
        "```python\ncode block that never ends",
        "***__~~`mixed",
        "a ** b __ c ~~ d",
        "> > > deeply\n> > nested\n> quote",
        "<b>raw html</b> & <script>alert(1)</script>",
        "&lt; already escaped &amp; &#60; &unknown;",
        "- [ ] task\n- [x] done\n\n| a | b |\n|---|---|\n| 1 | 2 |",
    ],
)
def test_unbalanced_or_odd_markdown_is_always_valid_html(markdown: str) -> None:
    for piece in to_pieces(markdown):
        accepted(piece)


def test_raw_html_is_shown_not_obeyed() -> None:
    (piece,) = to_pieces("<b>raw</b> <script>x</script>")
    assert accepted(piece) == "<b>raw</b> <script>x</script>"


def test_only_web_links_become_links() -> None:
    html = to_html("[a](https://ok.example) [b](javascript:alert(1)) [c](relative/path)")
    assert html.count("<a ") == 1 and 'href="javascript' not in html
    assert "b" in html and "c" in html


def test_ten_thousand_characters_become_pieces_under_the_limit_at_paragraphs() -> None:
    paragraphs = [(f"**Step {i}.** " + "Do this, then that. " * 25).strip() for i in range(20)]
    markdown = "\n\n".join(paragraphs)
    assert len(markdown) > 10_000
    pieces = to_pieces(markdown)
    assert len(pieces) == 3
    shown = [accepted(piece) for piece in pieces]
    assert words(" ".join(shown)) == words(to_pieces(markdown, 100_000)[0].text)
    assert all(text.endswith("Do this, then that.") for text in shown)  # paragraph ends
    assert all(piece.html.startswith("<b>Step") for piece in pieces)


def test_a_span_longer_than_a_message_is_closed_and_reopened() -> None:
    pieces = to_pieces("**" + ("bold words. " * 1000).strip() + "**")
    assert len(pieces) == 3
    for piece in pieces:
        accepted(piece)
        assert piece.html.startswith("<b>") and piece.html.endswith("</b>")
        assert piece.html.count("<b>") == 1


def test_a_long_code_block_stays_code_in_every_piece() -> None:
    code = "\n".join(f"print({i})  # line {i}" for i in range(400))
    pieces = to_pieces(f"Here:\n\n```python\n{code}\n```\n\nDone.")
    assert len(pieces) >= 2
    shown = "\n".join(accepted(piece) for piece in pieces)
    assert all(f"print({i})" in shown for i in range(400))
    for piece in pieces[1:-1]:
        assert piece.html.startswith('<pre><code class="language-python">')
    assert pieces[-1].text.endswith("Done.")


def test_fence_characters_inside_code_do_not_confuse_the_split() -> None:
    code = "\n".join("~~~ ``` not a fence" for _ in range(400))
    pieces = to_pieces(f"````\n{code}\n````")
    assert len(pieces) >= 2
    assert sum(accepted(p).count("``` not a fence") for p in pieces) == 400


def test_characters_outside_the_basic_plane_count_twice() -> None:
    pieces = to_pieces("😀 " * 3000)
    assert len(pieces) >= 3
    for piece in pieces:
        accepted(piece)


def test_empty_or_blank_markdown_is_no_message() -> None:
    assert to_pieces("") == [] and to_pieces("  \n\n ") == []


def test_random_markdown_always_gives_valid_pieces() -> None:
    bits = ["**", "*", "_", "__", "~~", "`", "```", "\n", "\n\n", "> ", "- ", "1. ", "# ",
            "[", "](", ")", "http://x.io", "<", ">", "&", "&amp;", "\\", "word ", "Sentence. ",
            "😀", "!", "|", "{", "}", "#", "+", "=", "-", "."]  # fmt: skip
    generator = random.Random(4)
    for _ in range(300):
        markdown = "".join(generator.choice(bits) for _ in range(generator.randint(1, 400)))
        limit = generator.choice([40, 200, MESSAGE_LIMIT])
        for piece in to_pieces(markdown, limit):
            shown = visible_text(piece.html, "HTML")
            assert shown == piece.text and 0 < utf16_length(shown) <= limit
            assert not re.search(r"<(\w+)[^>]*></\1>", piece.html)  # no empty entities
