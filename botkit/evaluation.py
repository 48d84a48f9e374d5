"""`botkit eval`: how well a bot's FAQ finds the right snippet, measured on its own folder.

Every alternative question (`questions:`) of every snippet is asked as a
query, with that wording left out of the index while it is scored (otherwise
each question would find itself). Real customer questions can be given as a
CSV file of `question,expected_snippet` instead. The report counts top-1 and
top-3 hits, the pairs of snippets that collide (the right one lost, and to
which), and the snippets that never rank first for their own questions.
"""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botkit.casebook import SnippetNames, snippet_name
from botkit.errors import ConfigError, Problem
from botkit.home import BotDefinition
from botkit.prompting.retrieval import FaqIndex

LEAVE_ONE_OUT = "leave-one-out"


@dataclass(frozen=True, slots=True)
class Query:
    question: str
    expected: str
    """The snippet that should rank first, by name (its file under faq/, without .md)."""


@dataclass(frozen=True, slots=True)
class Ranking:
    """Where the expected snippet ranked for one query."""

    query: Query
    rank: int | None
    """1 for first; None when the snippet did not match at all."""
    first: str | None
    """The snippet ranked first (None when nothing matched)."""
    confidence: float
    """The first snippet's confidence."""


@dataclass(frozen=True, slots=True)
class Collision:
    """Queries for one snippet that another snippet won."""

    expected: str
    ranked_first: str
    questions: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrievalReport:
    bot: str
    source: str
    """"leave-one-out", or the file the queries came from."""
    snippets: Sequence[str]
    rankings: Sequence[Ranking]
    answer_score: float
    """The bot's `faq_answer_score`: the confidence its offline answers need."""
    untested: Sequence[str] = field(default_factory=list)
    """Snippets no query expects (in leave-one-out: those with no alternative questions)."""

    def share(self, hits: int) -> float:
        return hits / len(self.rankings) if self.rankings else 0.0

    @property
    def top1(self) -> int:
        return sum(r.rank == 1 for r in self.rankings)

    @property
    def top3(self) -> int:
        return sum(r.rank is not None and r.rank <= 3 for r in self.rankings)

    @property
    def answered(self) -> int:
        """Queries the offline responder would answer with the right snippet."""
        return sum(r.rank == 1 and r.confidence >= self.answer_score for r in self.rankings)

    def collisions(self) -> list[Collision]:
        """The pairs that collide, the most frequent first."""
        lost: dict[tuple[str, str], list[str]] = {}
        for r in self.rankings:
            if r.rank != 1 and r.first is not None:
                lost.setdefault((r.query.expected, r.first), []).append(r.query.question)
        pairs = sorted(lost.items(), key=lambda item: (-len(item[1]), item[0]))
        return [Collision(expected, first, tuple(qs)) for (expected, first), qs in pairs]

    def unmatched(self) -> list[Query]:
        """Queries no snippet matched at all (no word in common with the FAQ)."""
        return [r.query for r in self.rankings if r.first is None]

    def never_first(self) -> list[str]:
        """Snippets that never rank first for their own questions."""
        asked = Counter(r.query.expected for r in self.rankings)
        won = Counter(r.query.expected for r in self.rankings if r.rank == 1)
        return [name for name in self.snippets if asked[name] and not won[name]]

    def to_json(self) -> dict[str, Any]:
        return {
            "bot": self.bot,
            "source": self.source,
            "snippets": len(self.snippets),
            "queries": len(self.rankings),
            "top1": round(self.share(self.top1), 4),
            "top3": round(self.share(self.top3), 4),
            "answered": round(self.share(self.answered), 4),
            "collisions": [
                {
                    "expected": c.expected,
                    "ranked_first": c.ranked_first,
                    "count": len(c.questions),
                    "questions": list(c.questions),
                }
                for c in self.collisions()
            ],
            "never_first": self.never_first(),
            "unmatched": [q.question for q in self.unmatched()],
            "untested": list(self.untested),
            "results": [
                {
                    "question": r.query.question,
                    "expected": r.query.expected,
                    "rank": r.rank,
                    "ranked_first": r.first,
                    "confidence": round(r.confidence, 4),
                }
                for r in self.rankings
            ],
        }

    def lines(self) -> list[str]:
        n = len(self.rankings)
        where = (
            "each asked with its own wording left out of the index"
            if self.source == LEAVE_ONE_OUT
            else f"from {self.source}"
        )
        out = [
            f"{self.bot}: {n} question{'s' * (n != 1)} for {len(self.snippets)} snippets, {where}",
            f"top-1     {self.share(self.top1):.2f}  ({self.top1}/{n})",
            f"top-3     {self.share(self.top3):.2f}  ({self.top3}/{n})",
            f"answered  {self.share(self.answered):.2f}  ({self.answered}/{n}) offline: the right "
            f"snippet first, with confidence ≥ faq_answer_score {self.answer_score:g}",
        ]
        if collisions := self.collisions():
            out += ["", "Collisions (the right snippet lost, and to which):"]
            for c in collisions:
                asked = "; ".join(f'"{q}"' for q in c.questions)
                out.append(f"  {len(c.questions)}×  {c.expected} lost to {c.ranked_first}: {asked}")
        if unmatched := self.unmatched():
            out += ["", "Matched no snippet at all:"]
            out += [f'  {q.expected}: "{q.question}"' for q in unmatched]
        if never := self.never_first():
            out += ["", f"Never ranked first for their own questions: {', '.join(never)}"]
        if self.untested:
            label = "no alternative questions" if self.source == LEAVE_ONE_OUT else "no query"
            out += ["", f"Not evaluated ({label}): {', '.join(self.untested)}"]
        return out


def what_is_missing(bot: BotDefinition, queries: Sequence[Query] | None) -> str | None:
    """Why `botkit eval` cannot measure this bot, or None when it can."""
    count = len(bot.faq.snippets)
    if count < 2:
        return (
            f"{bot.name}: botkit eval needs at least two FAQ snippets to tell apart "
            f"(it has {count}); add files under faq/"
        )
    if queries is None and not any(s.questions for s in bot.faq.snippets):
        return (
            f"{bot.name}: botkit eval asks each snippet's alternative questions, and none "
            "of its snippets has any; add 'questions: [...]' to their front matter, "
            "or give real questions with --queries FILE"
        )
    return None


def leave_one_out(bot: BotDefinition) -> RetrievalReport:
    """Ask every alternative question, with that question left out of its snippet."""
    snippets = bot.faq.snippets
    language = bot.settings.faq_language
    rankings = []
    for i, snippet in enumerate(snippets):
        for k, question in enumerate(snippet.questions):
            rest = snippet.questions[:k] + snippet.questions[k + 1 :]
            without = [
                *snippets[:i],
                dataclasses.replace(snippet, questions=rest),
                *snippets[i + 1 :],
            ]
            index = FaqIndex(without, language=language)
            rankings.append(_rank(index, Query(question, snippet_name(snippet))))
    return _report(bot, LEAVE_ONE_OUT, rankings)


def evaluate_queries(bot: BotDefinition, queries: Sequence[Query], source: str) -> RetrievalReport:
    """Ask real customer questions against the whole index, as the bot would."""
    return _report(bot, source, [_rank(bot.faq, q) for q in queries])


def read_queries(path: Path, names: SnippetNames, *, shown: Path | None = None) -> list[Query]:
    """`question,expected_snippet` rows (a header row of those words is skipped)."""
    display = shown or path
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([Problem(display, f"cannot read: {err}")]) from err
    queries = []
    problems = []
    reader = csv.reader(text.splitlines())
    for row in reader:
        line = reader.line_num
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if line == 1 and [c.lower() for c in cells] == ["question", "expected_snippet"]:
            continue
        if len(cells) != 2 or not all(cells):
            problems.append(
                Problem(display, "expected two columns: question,expected_snippet", line)
            )
            continue
        question, written = cells
        expected = names.resolve(written)
        if expected is None:
            problems.append(Problem(display, names.unknown(written), line))
            continue
        queries.append(Query(question, expected))
    if problems:
        raise ConfigError(problems)
    if not queries:
        raise ConfigError(
            [Problem(display, "no questions: write rows of question,expected_snippet")]
        )
    return queries


def _rank(index: FaqIndex, query: Query) -> Ranking:
    matches = index.search(query.question, top_k=len(index.snippets))
    names = [snippet_name(m.snippet) for m in matches]
    rank = names.index(query.expected) + 1 if query.expected in names else None
    first = matches[0] if matches else None
    return Ranking(query, rank, names[0] if names else None, first.confidence if first else 0.0)


def _report(bot: BotDefinition, source: str, rankings: list[Ranking]) -> RetrievalReport:
    names = [snippet_name(s) for s in bot.faq.snippets]
    asked = {r.query.expected for r in rankings}
    return RetrievalReport(
        bot=bot.name,
        source=source,
        snippets=names,
        rankings=rankings,
        answer_score=bot.settings.faq_answer_score,
        untested=[n for n in names if n not in asked],
    )
