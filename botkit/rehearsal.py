"""`botkit test`: a bot's cases, each held as a conversation with a fresh memory.

Each case gets its own pipeline, built from public parts: the bot (with the
case's `vars` laid over its own), a new `MemoryStore`, and the responder
given — the FAQ responder offline, the bot's LLM chain with `--llm`. The
responder is wrapped to note which FAQ snippets each prompt chose, so a case
can say which snippet must come first.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from botkit.casebook import Case, CaseTurn, snippet_name
from botkit.errors import ConfigError, LLMError
from botkit.home import BotDefinition
from botkit.llm.base import Completion, Responder
from botkit.messages import IncomingMessage, Reply
from botkit.pipeline import Pipeline
from botkit.prompting.composer import Prompt
from botkit.prompting.retrieval import FaqMatch
from botkit.prompting.tokens import count_message_tokens
from botkit.stores.memory import MemoryStore

JUDGE_SYSTEM = (
    "You check one reply of a customer-support assistant against one criterion. "
    "Answer PASS if the reply meets the criterion and FAIL if it does not, "
    "then one short sentence saying why."
)
_VERDICT = re.compile(r"\W*(PASS|FAIL)\b\W*(.*)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Failure:
    """One expectation a reply did not meet."""

    expected: str
    actual: str


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    turn: CaseTurn
    number: int
    reply: str
    failures: tuple[Failure, ...]


@dataclass(frozen=True, slots=True)
class CaseResult:
    bot: str
    case: Case
    turns: tuple[TurnOutcome, ...]
    seconds: float
    judges_skipped: int = 0

    @property
    def passed(self) -> bool:
        return all(not t.failures for t in self.turns)

    def line(self) -> str:
        """The one line `botkit test` prints for this case."""
        return f"{'ok  ' if self.passed else 'FAIL'}  {self.case.where}  {self.case.name}"

    def details(self) -> list[str]:
        """What went wrong, turn by turn: each expectation and what happened instead."""
        lines: list[str] = []
        for outcome in self.turns:
            if not outcome.failures:
                continue
            lines.append(f"turn {outcome.number} (line {outcome.turn.line}): {outcome.turn.user}")
            for failure in outcome.failures:
                lines.append(f"  expected: {failure.expected}")
                lines.append(f"  actual:   {failure.actual}")
            lines.append(f"  reply:    {_quoted(outcome.reply)}")
        return lines


class _Recorder:
    """The bot's responder, noting the FAQ matches of the last prompt it was asked."""

    def __init__(self, inner: Responder) -> None:
        self.inner = inner
        self.faq: list[FaqMatch] = []

    async def complete(self, prompt: Prompt) -> Completion:
        self.faq = prompt.faq
        return await self.inner.complete(prompt)

    def stream(self, prompt: Prompt) -> AsyncIterator[str | Completion]:
        self.faq = prompt.faq
        return self.inner.stream(prompt)


class Judge:
    """Asks the model whether a reply meets a criterion written in a case (`judge:`)."""

    def __init__(self, responder: Responder, bot: str) -> None:
        self._responder = responder
        self._bot = bot

    async def verdict(self, criterion: str, question: str, reply: str) -> Failure | None:
        text = f"Customer: {question}\n\nReply:\n{reply}\n\nCriterion: {criterion}"
        messages = [
            {"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": text},
        ]
        prompt = Prompt(
            message=IncomingMessage(
                channel="test",
                bot=self._bot,
                conversation_id="judge",
                user_id="botkit-judge",
                text=text,
            ),
            history=(),
            messages=messages,
            faq=[],
            context={},
            tokens=sum(count_message_tokens(m["content"]) for m in messages),
            question_tokens=count_message_tokens(text),
        )
        expected = f"the judge finds: {criterion}"
        try:
            answer = (await self._responder.complete(prompt)).text.strip()
        except LLMError as err:
            return Failure(expected, f"the judge could not answer: {err}")
        match = _VERDICT.match(answer)
        if match is None:
            return Failure(expected, f"the judge answered neither PASS nor FAIL: {answer}")
        if match[1].upper() == "PASS":
            return None
        return Failure(expected, f"the judge says no: {match[2].strip() or answer}")


class Rehearsal:
    """Runs one bot's cases; `judge` (with `--llm`) checks the `judge:` criteria."""

    def __init__(
        self, bot: BotDefinition, responder: Responder, *, judge: Judge | None = None
    ) -> None:
        self.bot = bot
        self._responder = responder
        self._judge = judge

    async def run(self, case: Case) -> CaseResult:
        started = time.perf_counter()
        bot = self.bot
        if case.vars:
            settings = bot.settings.model_copy(update={"vars": {**bot.settings.vars, **case.vars}})
            bot = dataclasses.replace(bot, settings=settings)
        recorder = _Recorder(self._responder)
        pipeline = Pipeline(bot=bot, store=MemoryStore(), responder=recorder)
        outcomes = []
        skipped = 0
        for number, turn in enumerate(case.turns, 1):
            recorder.faq = []
            message = IncomingMessage(
                channel=case.channel,
                bot=bot.name,
                conversation_id="case",
                user_id=case.user.id,
                user_name=case.user.name,
                user_language=case.user.language,
                text=turn.user,
                message_id=str(number),
            )
            try:
                reply = await pipeline.handle(message)
            except ConfigError as err:  # a template that fails at run time
                failure = Failure("a reply", f"a template error: {err}")
                outcomes.append(TurnOutcome(turn, number, "", (failure,)))
                continue
            assert reply is not None, "a case turn is never empty"
            failures = self._expectations(turn, reply, recorder.faq)
            if turn.judge is not None:
                if self._judge is None:
                    skipped += 1
                elif verdict := await self._judge.verdict(turn.judge, turn.user, reply.text):
                    failures.append(verdict)
            outcomes.append(TurnOutcome(turn, number, reply.text, tuple(failures)))
        return CaseResult(
            bot=self.bot.name,
            case=case,
            turns=tuple(outcomes),
            seconds=time.perf_counter() - started,
            judges_skipped=skipped,
        )

    def _expectations(self, turn: CaseTurn, reply: Reply, faq: Sequence[FaqMatch]) -> list[Failure]:
        failures = []
        text = reply.text
        folded = text.casefold()
        # With --llm (a judge), an answer the FAQ gave because the model failed proves
        # nothing about the model: it must not pass.
        if self._judge is not None and reply.error:
            failures.append(
                Failure("an answer from the model", f"no answer ({reply.error}); the FAQ answered")
            )
        if turn.faq is not None:
            first = faq[0] if faq else None
            if first is None or snippet_name(first.snippet) != turn.faq:
                actual = "no snippet matched"
                if first is not None:
                    actual = (
                        f"'{snippet_name(first.snippet)}' chosen first "
                        f"(confidence {first.confidence:.2f})"
                    )
                failures.append(Failure(f"FAQ snippet '{turn.faq}' chosen first", actual))
        for wanted in turn.reply_contains:
            if wanted.casefold() not in folded:
                failures.append(Failure(f"the reply contains {_quoted(wanted)}", "it does not"))
        for unwanted in turn.reply_not_contains:
            if unwanted.casefold() in folded:
                failures.append(
                    Failure(f"the reply does not contain {_quoted(unwanted)}", "it does")
                )
        for pattern in turn.reply_matches:
            if pattern.search(text) is None:
                failures.append(Failure(f"the reply matches /{pattern.pattern}/", "it does not"))
        if turn.kind is not None and reply.kind != turn.kind:
            failures.append(Failure(f"a reply of kind '{turn.kind}'", f"kind '{reply.kind}'"))
        if turn.handoff is True and reply.kind != "handoff":
            failures.append(
                Failure("a handoff to a person (a reply of kind 'handoff')", f"kind '{reply.kind}'")
            )
        if turn.handoff is False and reply.kind == "handoff":
            failures.append(Failure("no handoff", "the conversation was handed to a person"))
        return failures


def junit_xml(results: Sequence[CaseResult]) -> bytes:
    """JUnit XML, one test suite per bot, for CI systems to show."""
    root = ElementTree.Element("testsuites", name="botkit test")
    suites: dict[str, ElementTree.Element] = {}
    for result in results:
        suite = suites.get(result.bot)
        if suite is None:
            suite = suites[result.bot] = ElementTree.SubElement(root, "testsuite", name=result.bot)
        testcase = ElementTree.SubElement(
            suite,
            "testcase",
            classname=f"{result.bot}.{Path(result.case.path).stem}",
            name=result.case.name,
            file=Path(result.case.path).as_posix(),
            line=str(result.case.line),
            time=f"{result.seconds:.3f}",
        )
        if not result.passed:
            details = result.details()
            failure = ElementTree.SubElement(testcase, "failure", message=details[0])
            failure.text = "\n".join(details)
    for element in [root, *suites.values()]:
        cases = element.iter("testcase")
        counted = [0, 0]
        for case in cases:
            counted[0] += 1
            counted[1] += case.find("failure") is not None
        element.set("tests", str(counted[0]))
        element.set("failures", str(counted[1]))
        element.set("errors", "0")
    ElementTree.indent(root)
    xml: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return xml


def _quoted(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f'"{text}"'
