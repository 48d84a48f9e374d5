"""Reading conversation cases from `prompts/NAME/tests/*.yaml`."""

from __future__ import annotations

from pathlib import Path

import pytest

from botkit.casebook import Case, CaseUser, SnippetNames, load_cases
from botkit.prompting.faq import FaqSnippet

SNIPPETS = SnippetNames(
    [
        FaqSnippet("Deposit?", "50 €.", "faq/deposit.md"),
        FaqSnippet("Hours?", "9–5.", "faq/hours.md"),
        FaqSnippet("Card?", "Yes.", "faq/billing/card.md"),
        FaqSnippet("Card at the shop?", "Yes.", "faq/shop/card.md"),
    ]
)


def read(tmp_path: Path, text: str, name: str = "cases.yaml") -> tuple[list[Case], list[str]]:
    tests = tmp_path / "tests"
    tests.mkdir(exist_ok=True)
    (tests / name).write_text(text, "utf-8")
    cases, problems = load_cases(tmp_path, SNIPPETS, shown=Path("prompts/shop"))
    return cases, [str(p) for p in problems]


def test_a_case_file_reads_with_every_key(tmp_path: Path) -> None:
    cases, problems = read(
        tmp_path,
        """\
- name: deposit question
  turns:
    - user: How much is the deposit?
      faq: deposit
      reply_contains: ["50 €"]
    - user: And can I pay by card?
      faq: billing/card
      reply_not_contains: deposit
      reply_matches: ['\\bcard\\b', '^Yes']
      kind: answer
      handoff: false
      judge: says cards are fine
- user: {id: bob, name: Bob, language: de}
  channel: web
  vars: {company: Acme, limits: {deposit: 50}}
  turns:
    - user: I want to talk to a human
      handoff: true
- user: ann
  turns: [{user: /help, kind: command}]
""",
    )
    assert problems == []
    first, second, third = cases
    assert (first.name, first.where, first.channel, first.user) == (
        "deposit question",
        "prompts/shop/tests/cases.yaml:1",
        "console",
        CaseUser(),
    )
    deposit, card = first.turns
    assert (deposit.line, deposit.faq, deposit.reply_contains) == (3, "deposit", ("50 €",))
    assert (card.faq, card.reply_not_contains, card.kind, card.handoff, card.judge) == (
        "billing/card",
        ("deposit",),
        "answer",
        False,
        "says cards are fine",
    )
    assert [p.pattern for p in card.reply_matches] == [r"\bcard\b", "^Yes"]
    assert second.name == "case 2" and second.line == 13
    assert second.user == CaseUser(id="bob", name="Bob", language="de")
    assert (second.channel, dict(second.vars)) == (
        "web",
        {"company": "Acme", "limits": {"deposit": 50}},
    )
    assert second.turns[0].handoff is True
    assert third.user == CaseUser(id="ann") and third.turns[0].kind == "command"


def test_files_are_read_in_order_and_other_files_are_ignored(tmp_path: Path) -> None:
    read(tmp_path, "- name: b\n  turns: [{user: hi}]\n", "b.yml")
    read(tmp_path, "not a case file", "notes.txt")
    cases, problems = read(tmp_path, "- name: a\n  turns: [{user: hi}]\n", "a.yaml")
    assert problems == [] and [c.name for c in cases] == ["a", "b"]


BAD = {
    "unknown case key": (
        "- name: x\n  turns: [{user: hi}]\n  chanel: web\n",
        "cases.yaml:3: unknown key 'chanel' in a case (did you mean 'channel'?); "
        "known keys: name, turns, user, channel, vars",
    ),
    "unknown turn key": (
        "- name: x\n  turns:\n    - user: hi\n      reply_contain: [x]\n",
        "cases.yaml:4: unknown key 'reply_contain' in a turn (did you mean 'reply_contains'?)",
    ),
    "turn without user": (
        "- name: x\n  turns:\n    - user: hi\n    - faq: deposit\n",
        "cases.yaml:4: a turn needs 'user': the customer's message",
    ),
    "faq naming no snippet": (
        "- name: x\n  turns:\n    - user: hi\n      faq: deposits\n",
        "cases.yaml:4: no FAQ snippet 'deposits' (did you mean 'deposit'?); "
        "snippets: deposit, hours, billing/card, shop/card",
    ),
    "ambiguous stem": (
        "- name: x\n  turns:\n    - user: hi\n      faq: card\n",
        "cases.yaml:4: no FAQ snippet 'card'",
    ),
    "no turns": ("- name: x\n", "cases.yaml:1: a case needs 'turns'"),
    "empty turns": ("- name: x\n  turns: []\n", "cases.yaml:2: 'turns' must be a list"),
    "not a list": ("name: x\n", "cases.yaml:1: a case file is a list of cases"),
    "empty file": ("", "cases.yaml:1: empty: write a list of cases"),
    "invalid yaml": ("- name: x\n  turns: [\n", "cases.yaml:3: invalid YAML"),
    "unknown kind": (
        "- turns:\n    - user: hi\n      kind: answered\n",
        "cases.yaml:3: unknown kind 'answered' (kinds: answer, fallback, command, limit, handoff",
    ),
    "bad regex": (
        "- turns:\n    - user: hi\n      reply_matches: ['(']\n",
        "cases.yaml:3: 'reply_matches': invalid regular expression: missing ), unterminated",
    ),
    "handoff not a bool": (
        "- turns:\n    - user: hi\n      handoff: yes please\n",
        "cases.yaml:3: 'handoff' must be true or false",
    ),
    "empty message": ("- turns:\n    - user: ' '\n", "cases.yaml:2: 'user' is empty"),
    "user is a list": ("- user: [a]\n  turns: [{user: hi}]\n", "cases.yaml:1: a user must be"),
    "unknown user key": (
        "- user: {id: a, lang: de}\n  turns: [{user: hi}]\n",
        "cases.yaml:1: unknown key 'lang' in a user (did you mean 'language'?)",
    ),
    "contains a table": (
        "- turns:\n    - user: hi\n      reply_contains: [{a: b}]\n",
        "cases.yaml:3: expected a text",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_a_malformed_case_file_names_file_and_line(tmp_path: Path, case: str) -> None:
    text, expected = BAD[case]
    cases, problems = read(tmp_path, text)
    assert cases == []
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"prompts/shop/tests/{expected}"), problems[0]


def test_every_mistake_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = "- name: ok\n  turns: [{user: hi}]\n- nme: x\n  turns:\n    - faq: nope\n"
    cases, problems = read(tmp_path, text)
    assert [c.name for c in cases] == ["ok"]
    assert [p.split(":")[1] for p in problems] == ["3", "5"]
