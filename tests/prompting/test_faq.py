from __future__ import annotations

from pathlib import Path

import pytest

from botkit.prompting.faq import SnippetError, load_faq, parse_snippet
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
