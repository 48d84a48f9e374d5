from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from botkit.prompting import faq
from botkit.prompting.faq import (
    FaqSnippet,
    SnippetError,
    load_faq,
    parse_snippet,
    simple_front_matter,
)
from botkit.testing import faq_file, write_bot


def test_a_snippet_has_question_variants_tags_and_answer() -> None:
    text = faq_file(
        "How do I reset my password?",
        "Use **Forgot password?** on the sign-in page.",
        questions=["I forgot my password"],
        tags=["account"],
    )
    snippet = parse_snippet(text, "faq/password.md")
    assert snippet.question == "How do I reset my password?"
    assert snippet.questions == ("I forgot my password",)
    assert snippet.tags == ("account",)
    assert snippet.answer == "Use **Forgot password?** on the sign-in page."
    assert snippet.source == "faq/password.md"


def test_a_single_string_is_accepted_for_questions_and_tags() -> None:
    snippet = parse_snippet("---\nquestion: Q?\nquestions: other way\ntags: x\n---\nA.\n", "s")
    assert snippet.questions == ("other way",)
    assert snippet.tags == ("x",)


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("Just an answer.\n", "missing front matter", 1),
        ("---\nquestion: Q?\nAnswer without end\n", "not closed", 1),
        ("---\ntags: [a]\n---\nAnswer.\n", "no 'question'", 2),
        ("---\nquestion: '   '\n---\nAnswer.\n", "no 'question'", 2),
        ("---\nquestion: Q?\n---\n\n   \n", "answer", 3),
        ("---\nquestion: Q?\nqestions: [x]\n---\nA.\n", "unknown front-matter key 'qestions'", 3),
        ("---\nquestion: Q?\ntags: [a, b\n---\nA.\n", "invalid front matter", 4),
        ("---\nquestion: Q?\ntags: {a: 1}\n---\nA.\n", "'tags' must be a list", 3),
        ("---\n- just\n- a list\n---\nA.\n", "key: value", 2),
    ],
)
def test_bad_snippets_name_the_problem_and_line(text: str, message: str, line: int) -> None:
    with pytest.raises(SnippetError) as caught:
        parse_snippet(text, "faq/x.md")
    assert message in caught.value.message
    assert caught.value.line == line


def test_load_faq_reports_each_bad_file_and_keeps_the_good_ones(tmp_path: Path) -> None:
    folder = write_bot(
        tmp_path,
        "b",
        faq={
            "good.md": faq_file("Q?", "A."),
            "bad.md": "---\ntags: [x]\n---\nNo question here.\n",
            "notes.txt": "not a snippet: ignored",
        },
    )
    (folder / "faq" / "nested").mkdir()
    (folder / "faq" / "nested" / "deep.md").write_text(faq_file("Deep?", "Yes."))
    snippets, problems = load_faq(folder)
    assert sorted(s.source for s in snippets) == ["faq/good.md", "faq/nested/deep.md"]
    assert [str(p) for p in problems] == [f"{folder}/faq/bad.md:2: front matter has no 'question'"]


def test_a_bot_without_faq_folder_has_no_snippets(tmp_path: Path) -> None:
    assert load_faq(tmp_path) == ([], [])


@pytest.mark.parametrize(
    "front_matter",
    [
        "question: How do I reset my password?",
        'question: "Where is my card?"\ntags: [cards, delivery]',
        "question: 'Can I pay by card?'\nquestions: [pay by card, card payment]\ntags: []",
        "question: Refunds\nquestions:\n  - I want my money back\n  - 'refund please'\ntags: [b]",
        "# a comment\nquestion: Hours\n\ntags: [a]\ntags: [b]",
        "question: Export\nquestions:",
        "question: Export\ntags: [ spaced , items ]",
        # What YAML reads otherwise: each of these must come out exactly as YAML has it.
        "question: yes",
        "question: Null",
        "question: 1.5",
        "question: 2024-01-01",
        "question: Time: 9 to 5",
        "question: Hours # open late",
        'question: "tab\\there"',
        "question: 'it''s'",
        "question: [a, [b]]",
        'tags: ["a, b", c]',
        "question: >\n  folded\n  text",
        "question: Ça va?",
        "question: ~",
        "questions:\n- at the margin",
        "question: &anchor Hello\nquestions: [*anchor]",
    ],
)
def test_simple_front_matter_reads_as_yaml_does(
    front_matter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read without YAML where it can be, the front matter must come out as YAML has it.
    simple = simple_front_matter(front_matter.splitlines())
    assert simple is None or simple == yaml.safe_load(front_matter)
    text = f"---\n{front_matter}\n---\nThe answer.\n"
    parsed = _parsed(text)
    monkeypatch.setattr(faq, "simple_front_matter", lambda lines: None)
    assert parsed == _parsed(text)


def test_the_usual_front_matter_is_read_without_yaml() -> None:
    assert simple_front_matter(["question: Hours", "questions:", "  - When are you open?"]) == {
        "question": "Hours",
        "questions": ["When are you open?"],
    }


def _parsed(text: str) -> FaqSnippet | str:
    try:
        return parse_snippet(text, "a.md")
    except SnippetError as err:
        return f"{err.line}: {err.message}"
