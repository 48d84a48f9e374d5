from __future__ import annotations

import re

import pytest

from botkit.adapters.formatting import split_text


def words(text: str) -> list[str]:
    return [w for w in re.split(r"\s+", text.replace("```python", "").replace("```", "")) if w]


def test_short_text_is_one_piece() -> None:
    assert split_text("  Hello there.  ", 100) == ["Hello there."]


def test_pieces_fit_and_lose_nothing() -> None:
    paragraphs = [f"Paragraph {i}. " + "Some words here. " * 30 for i in range(40)]
    text = "\n\n".join(paragraphs)
    pieces = split_text(text, 4096)
    assert len(pieces) > 1
    assert all(len(p) <= 4096 for p in pieces)
    assert words(" ".join(pieces)) == words(text)


def test_paragraph_breaks_are_preferred() -> None:
    text = "A" * 50 + "\n\n" + "B " * 30 + "\n" + "C " * 20
    assert split_text(text, 100)[0] == "A" * 50


def test_sentences_are_kept_whole_when_there_are_no_line_breaks() -> None:
    text = " ".join(f"Sentence number {i} ends here." for i in range(20))
    pieces = split_text(text, 120)
    assert all(p.endswith(".") for p in pieces)


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    pieces = split_text("x" * 250, 100)
    assert "".join(pieces) == "x" * 250 and all(len(p) <= 100 for p in pieces)


def test_a_code_block_cut_in_two_is_closed_and_reopened() -> None:
    code = "\n".join(f"print({i})" for i in range(60))
    text = f"Here is the script:\n\n```python\n{code}\n```\n\nThat's all."
    pieces = split_text(text, 200)
    assert len(pieces) > 2
    for piece in pieces:
        assert piece.count("```") % 2 == 0, piece
        assert len(piece) <= 200
    assert pieces[1].startswith("```python\n")
    assert words(" ".join(pieces)) == words(text)


def test_a_tiny_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        split_text("text", 5)
