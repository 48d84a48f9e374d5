"""`botkit test`: holding the written-down conversations with the bot."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from botkit.casebook import SnippetNames, load_cases
from botkit.cli import main
from botkit.home import BotDefinition, BotHome
from botkit.llm.base import Completion
from botkit.llm.offline import FaqResponder
from botkit.prompting.composer import Prompt
from botkit.rehearsal import CaseResult, Rehearsal
from botkit.testing import write_bot
from tests.llm.openai_server import Answer, OpenAIServer

REPO = Path(__file__).resolve().parent.parent


def write_cases(home: Path, text: str, bot: str = "shop", name: str = "cases.yaml") -> Path:
    path = home / "prompts" / bot / "tests" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


async def rehearse(shop: BotDefinition, text: str, responder: object = None) -> list[CaseResult]:
    write_cases(Path("."), text)
    cases, problems = BotHome(shop.folder.parent.parent).cases(shop)
    assert problems == []
    rehearsal = Rehearsal(shop, responder or FaqResponder(shop))  # type: ignore[arg-type]
    return [await rehearsal.run(case) for case in cases]


PASSING = """\
- name: hours, then a refund
  turns:
    - user: When are you open?
      faq: hours
      reply_contains: ["monday to friday"]
      reply_matches: ['9:00 to 17:00\\.$']
      kind: answer
      handoff: false
    - user: Can I get a refund?
      faq: refund
      reply_contains: [30 days]
      reply_not_contains: [Monday]
- name: nothing fits
  turns:
    - user: Do you sell gift cards?
      kind: fallback
      reply_contains: [support team]
- name: commands
  turns:
    - user: /help
      kind: command
"""


async def test_cases_that_hold_pass(shop: BotDefinition) -> None:
    results = await rehearse(shop, PASSING)
    assert [r.passed for r in results] == [True, True, True]
    assert results[0].line() == "ok    prompts/shop/tests/cases.yaml:1  hours, then a refund"
    assert results[0].details() == []


# Each assertion kind, with a turn that must fail it: what it expected, and what happened.
FAILING = {
    "faq": (
        "faq: refund",
        "expected: FAQ snippet 'refund' chosen first",
        "actual:   'hours' chosen first (confidence 0.",
    ),
    "reply_contains": (
        'reply_contains: ["Saturday"]',
        'expected: the reply contains "Saturday"',
        "actual:   it does not",
    ),
    "reply_not_contains": (
        "reply_not_contains: [friday]",
        'expected: the reply does not contain "friday"',
        "actual:   it does",
    ),
    "reply_matches": (
        "reply_matches: ['^Closed']",
        "expected: the reply matches /^Closed/",
        "actual:   it does not",
    ),
    "kind": ("kind: fallback", "expected: a reply of kind 'fallback'", "actual:   kind 'answer'"),
    "handoff": (
        "handoff: true",
        "expected: a handoff to a person (a reply of kind 'handoff')",
        "actual:   kind 'answer'",
    ),
}


@pytest.mark.parametrize("kind", FAILING)
async def test_each_assertion_fails_when_it_should(shop: BotDefinition, kind: str) -> None:
    line, expected, actual = FAILING[kind]
    text = f"- name: must fail\n  turns:\n    - user: When are you open?\n      {line}\n"
    [result] = await rehearse(shop, text)
    assert not result.passed
    assert result.line() == "FAIL  prompts/shop/tests/cases.yaml:1  must fail"
    details = result.details()
    assert details[0] == "turn 1 (line 3): When are you open?"
    assert details[1] == f"  {expected}"
    assert details[2].startswith(f"  {actual}")
    assert details[3] == '  reply:    "We are open Monday to Friday, 9:00 to 17:00."'


async def test_later_turns_run_after_a_failing_one_and_each_case_starts_fresh(
    shop: BotDefinition,
) -> None:
    text = """\
- name: first
  turns:
    - user: When are you open?
      kind: fallback
    - user: /reset
      kind: command
- name: second
  turns:
    - user: Can I get a refund?
      faq: refund
"""
    first, second = await rehearse(shop, text)
    assert [len(t.failures) for t in first.turns] == [1, 0]
    assert second.passed


class HandsOff:
    """A responder that hands every conversation to a person, as the handoff work will."""

    async def complete(self, prompt: Prompt) -> Completion:
        return Completion(text="A person will take it from here.", kind="handoff")

    async def stream(self, prompt: Prompt) -> AsyncIterator[str | Completion]:
        yield await self.complete(prompt)


async def test_a_handoff_case_passes_once_the_reply_is_a_handoff(shop: BotDefinition) -> None:
    text = "- name: wants a person\n  turns:\n    - user: A human please\n      handoff: true\n"
    [result] = await rehearse(shop, text, HandsOff())
    assert result.passed
    text = "- name: no person\n  turns:\n    - user: A human please\n      handoff: false\n"
    [result] = await rehearse(shop, text, HandsOff())
    assert result.details()[1:3] == [
        "  expected: no handoff",
        "  actual:   the conversation was handed to a person",
    ]


async def test_user_channel_and_vars_are_set_per_case(tmp_path: Path) -> None:
    system = "{{ vars.company }}, {{ channel }}, {{ user.id }} {{ user.name }} {{ user.language }}"
    write_bot(
        tmp_path,
        "who",
        system=system,
        files={"fallback.md.j2": system},
        settings='[vars]\ncompany = "Acme"\n',
    )
    bot = BotHome(tmp_path).load_checked("who")
    text = """\
- name: defaults
  turns:
    - user: who am I?
      reply_contains: ["Acme, console, test-user None None"]
- name: overrides
  user: {id: bob, name: Bob, language: de}
  channel: telegram
  vars: {company: Globex}
  turns:
    - user: who am I?
      reply_contains: ["Globex, telegram, bob Bob de"]
"""
    write_cases(tmp_path, text, bot="who")
    cases, _ = load_cases(bot.folder, SnippetNames(bot.faq.snippets))
    rehearsal = Rehearsal(bot, FaqResponder(bot))
    assert [(await rehearsal.run(c)).passed for c in cases] == [True, True]


# -- the command --------------------------------------------------------------------------


def test_the_demo_bot_passes_its_own_cases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", "nimbus", "--home", str(REPO)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) >= 5
    assert all(line.startswith("ok    prompts/nimbus/tests/") for line in out[:-1])
    assert out[-1].startswith(f"{len(out) - 1} passed, 0 failed")


def test_the_scaffold_passes_its_own_cases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "acme"]) == 0
    assert main(["test"]) == 0
    out = capsys.readouterr().out
    assert "created prompts/acme/tests/basics.yaml" in out
    assert out.endswith("3 passed, 0 failed\n")


def test_failures_exit_1_and_junit_xml_parses(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_cases(home, PASSING.replace("kind: fallback", "kind: answer"))
    junit = home / "out" / "junit.xml"
    junit.parent.mkdir()
    assert main(["test", "shop", "--junit", str(junit)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  prompts/shop/tests/cases.yaml:13  nothing fits" in out
    assert "      turn 1 (line 15): Do you sell gift cards?\n" in out
    assert out.endswith("2 passed, 1 failed\n")
    root = ElementTree.parse(junit).getroot()
    assert (root.tag, root.get("tests"), root.get("failures")) == ("testsuites", "3", "1")
    [suite] = root
    cases = {c.get("name"): c for c in suite}
    assert suite.get("name") == "shop" and len(cases) == 3
    failure = cases["nothing fits"].find("failure")
    assert failure is not None and "kind 'fallback'" in (failure.text or "")
    assert cases["commands"].find("failure") is None
    assert cases["commands"].get("file") == "prompts/shop/tests/cases.yaml"


def test_a_malformed_case_file_is_exit_2_with_file_and_line(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_cases(home, "- name: x\n  turns:\n    - user: hi\n      faq: hour\n")
    assert main(["test", "shop"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("prompts/shop/tests/cases.yaml:4: no FAQ snippet 'hour' (did you mean")
    assert main(["check", "shop"]) == 1  # check reads the case files too
    assert capsys.readouterr().out.startswith("prompts/shop/tests/cases.yaml:4: ")


def test_a_bot_without_cases_says_so(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "shop"]) == 1
    out, err = capsys.readouterr()
    assert out == "shop: no cases in prompts/shop/tests/*.yaml\n"
    assert "nothing to test" in err


def test_judge_lines_are_counted_but_not_run_offline(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_cases(home, "- turns:\n    - user: When are you open?\n      judge: gives the hours\n")
    assert main(["test"]) == 0
    assert capsys.readouterr().out.endswith(
        "1 passed, 0 failed; 1 judge: line not run offline (use --llm)\n"
    )


def test_llm_without_a_configured_model_is_exit_2(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_cases(home, PASSING)
    assert main(["test", "--llm"]) == 2
    assert "--llm needs BOTKIT_LLM_API_KEY or BOTKIT_LLM_BASE_URL" in capsys.readouterr().err


async def test_llm_runs_against_the_configured_model_and_the_judge_decides(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = OpenAIServer()
    await server.start()
    try:
        server.then(
            Answer("Refunds are possible within 30 days."),
            Answer("PASS - it gives the 30 days."),
            Answer("You can return it within a month."),
            Answer("FAIL: it says a month, not 30 days."),
        )
        write_cases(
            home,
            """\
- name: judged right
  turns:
    - user: Can I get a refund?
      judge: mentions the 30-day limit
- name: judged wrong
  turns:
    - user: Can I get a refund?
      reply_contains: [month]
      judge: mentions the 30-day limit
""",
        )
        monkeypatch.setenv("BOTKIT_LLM_BASE_URL", server.base_url)
        code = await asyncio.to_thread(main, ["test", "shop", "--llm"])
    finally:
        await server.stop()
    out = capsys.readouterr().out
    assert code == 1, out
    assert out.splitlines() == [
        "ok    prompts/shop/tests/cases.yaml:1  judged right",
        "FAIL  prompts/shop/tests/cases.yaml:5  judged wrong",
        "      turn 1 (line 7): Can I get a refund?",
        "        expected: the judge finds: mentions the 30-day limit",
        "        actual:   the judge says no: it says a month, not 30 days.",
        '        reply:    "You can return it within a month."',
        "1 passed, 1 failed",
    ]
    bot_call, judge_call = server.received[:2]
    assert bot_call.body["messages"][-1] == {"role": "user", "content": "Can I get a refund?"}
    judged = judge_call.body["messages"][-1]["content"]
    assert "Refunds are possible within 30 days." in judged
    assert judged.endswith("Criterion: mentions the 30-day limit")
    assert not (home / ".botkit").exists()  # nothing reached the real store


async def test_llm_failing_to_answer_fails_the_case_instead_of_passing_on_the_faq(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cases(home, "- turns:\n    - user: When are you open?\n      faq: hours\n")
    monkeypatch.setenv("BOTKIT_LLM_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens
    monkeypatch.setenv("BOTKIT_LLM_MAX_RETRIES", "0")
    code = await asyncio.to_thread(main, ["test", "--llm"])
    out = capsys.readouterr().out
    assert code == 1
    assert "expected: an answer from the model" in out
    assert "actual:   no answer (APIConnectionError); the FAQ answered" in out


def test_the_demo_bot_copied_elsewhere_still_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO / "prompts" / "nimbus", tmp_path / "prompts" / "nimbus")
    shutil.copytree(REPO / "bots", tmp_path / "bots")
    assert main(["test"]) == 0
