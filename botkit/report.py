"""`botkit report`: what a bot did over the last days, and which FAQ answers to write next.

Read from the store (outcomes, votes and the token ledger), never from a channel:

    conversations and messages; the share resolved by the bot (no handoff, no fallback,
    no 👎); handoffs, fallbacks, votes; reply time; tokens and cost per day
    the questions it could not answer: messages that got the fallback, a 👎 or a
    handoff, grouped by similarity as the bot's own FAQ retriever scores it, largest
    group first, each with the closest FAQ snippet there is

`Report.lines()` is the terminal's, `Report.to_json()` is `--json`'s, and
`botkit.report_page` draws `--html`.
"""

from __future__ import annotations

import heapq
import re
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from botkit.home import BotDefinition
from botkit.messages import Feedback, Outcome
from botkit.prompting.faq import FaqSnippet
from botkit.prompting.retrieval import FaqIndex
from botkit.settings import Price
from botkit.stores.base import Store

KINDS = ("model", "faq", "fallback", "limit", "command", "handoff", "relayed")
"""Every outcome, in the order tables and charts show them."""
ANSWERED = ("model", "faq")
GROUPS_SHOWN = 10
SIMILAR = 0.25
"""How alike the questions of a group are on average: what each scores against another,
as a share of what it scores against itself (the retriever's confidence, so that its
scale does not matter)."""
MOST_QUESTIONS = 3000
"""Grouping compares every question with every other: at most this many distinct ones
(the most frequent) are grouped."""
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Day:
    """One day (UTC) of a report."""

    day: str
    outcomes: dict[str, int]
    thumbs_up: int
    thumbs_down: int
    reply_p50: float | None
    tokens: int
    cost: float | None

    @property
    def messages(self) -> int:
        return sum(self.outcomes.values())


@dataclass(frozen=True, slots=True)
class Closest:
    """The FAQ snippet closest to a group of questions."""

    question: str
    source: str
    confidence: float


@dataclass(frozen=True, slots=True)
class Group:
    """Questions the bot could not answer that are alike: one FAQ entry to write."""

    count: int
    examples: tuple[str, ...]
    reasons: dict[str, int]
    """How many got the fallback, a 👎 (`thumbs_down`) or a handoff."""
    closest: Closest | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    bot: str
    days: int
    since: float
    until: float
    conversations: int
    resolved: int
    """Conversations the bot saw through alone: answered, no handoff, no fallback, no 👎."""
    handed_off: int
    """Conversations handed to people."""
    messages: int
    outcomes: dict[str, int]
    thumbs_up: int
    thumbs_down: int
    reply_p50: float | None
    reply_p95: float | None
    tokens: int
    cost: float | None
    unpriced: tuple[str, ...] = ()
    """Models that spent tokens but have no price in BOTKIT_LLM_PRICES."""
    per_day: tuple[Day, ...] = ()
    groups: tuple[Group, ...] = ()
    reply_seconds: tuple[float, ...] = field(default=(), repr=False)
    """Every reply time, for the chart of their spread."""

    @property
    def empty(self) -> bool:
        return self.messages == 0

    @property
    def period(self) -> str:
        first = _day(self.since)
        last = _day(self.until - 1)
        return f"the last {self.days} day{'s' * (self.days != 1)} ({first} to {last}, UTC)"

    def share(self, part: int, whole: int) -> str:
        return f"{100 * part / whole:.0f}%" if whole else "-"

    def lines(self) -> list[str]:
        """The report as the terminal shows it."""
        if self.empty:
            return [f"{self.bot}: no conversations in {self.period}"]
        fallback = self.outcomes.get("fallback", 0)
        lines = [
            f"{self.bot} · {self.period}",
            "",
            f"Conversations  {self.conversations:>7,}    resolved by the bot  "
            f"{self.share(self.resolved, self.conversations):>4}  ({self.resolved:,})",
            f"Messages       {self.messages:>7,}    handed to a person   "
            f"{self.share(self.handed_off, self.conversations):>4}  ({self.handed_off:,})",
            f"Feedback     👍 {self.thumbs_up:>5,}    fallback answers     "
            f"{self.share(fallback, self.messages):>4}  ({fallback:,} messages)",
            f"             👎 {self.thumbs_down:>5,}    reply time           "
            f"p50 {_seconds(self.reply_p50)}, p95 {_seconds(self.reply_p95)}",
            f"Tokens   {self.tokens:>13,}    cost                 {_money(self.cost)}"
            + (f"  (no price for {', '.join(self.unpriced)})" if self.unpriced else ""),
            "",
        ]
        lines += _table(self.per_day)
        lines += ["", "Questions it could not answer: the FAQ entries to write next"]
        if not self.groups:
            lines.append("  none: every question got an answer, and no answer a 👎")
        for number, group in enumerate(self.groups, start=1):
            examples = " · ".join(f'"{_short(e)}"' for e in group.examples)
            lines.append(f"{number:>3}. {group.count:>4}×  {examples}")
            reasons = ", ".join(f"{_REASONS[r]} {n}" for r, n in group.reasons.items() if n)
            if group.closest is None:
                nearest = "no FAQ snippet comes close"
            else:
                c = group.closest
                nearest = f'closest: {c.source} "{_short(c.question, 40)}" ({c.confidence:.2f})'
            lines.append(f"          {reasons} · {nearest}")
        return lines

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["reply_seconds"]
        data["since"] = datetime.fromtimestamp(self.since, UTC).isoformat()
        data["until"] = datetime.fromtimestamp(self.until, UTC).isoformat()
        for day in data["per_day"]:
            day["messages"] = sum(day["outcomes"].values())
        return data


_REASONS = {"fallback": "fallback", "thumbs_down": "👎", "handoff": "handoff"}


async def gather(
    store: Store,
    bot: BotDefinition,
    *,
    days: int = 7,
    prices: Mapping[str, Price] | None = None,
    now: float | None = None,
) -> Report:
    """The report of the last `days` days (UTC, today included) of `bot`."""
    until = time.time() if now is None else now
    first = datetime.fromtimestamp(until, UTC).date() - timedelta(days=max(days, 1) - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp()
    outcomes = await store.outcomes(bot=bot.name, since=since, until=until)
    votes = await store.feedback(bot=bot.name, since=since, until=until)
    usage = await store.usage_totals(since=first.isoformat(), bot=bot.name)
    prices = prices or {}

    by_conversation: defaultdict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        if outcome.kind != "command":
            by_conversation[outcome.conversation].append(outcome)
    disliked = {(v.conversation, v.message_id) for v in votes if v.score < 0}
    resolved = handed_off = 0
    for conversation, theirs in by_conversation.items():
        kinds = {o.kind for o in theirs}
        if kinds & {"handoff", "relayed"}:
            handed_off += 1
        elif (
            kinds & set(ANSWERED)
            and "fallback" not in kinds
            and not any((conversation, o.message_id) in disliked for o in theirs)
        ):
            resolved += 1

    replies = [o.seconds for o in outcomes if o.kind not in ("command", "relayed")]
    tokens_per_day: Counter[str] = Counter()
    cost_per_day: dict[str, float] = {}
    unpriced: set[str] = set()
    for total in usage:
        tokens_per_day[total.day] += total.prompt_tokens + total.completion_tokens
        price = prices.get(total.model)
        if price is None:
            unpriced.add(total.model)
            continue
        spent = (total.prompt_tokens * price.input + total.completion_tokens * price.output) / 1e6
        cost_per_day[total.day] = cost_per_day.get(total.day, 0.0) + spent

    return Report(
        bot=bot.name,
        days=days,
        since=since,
        until=until,
        conversations=len(by_conversation),
        resolved=resolved,
        handed_off=handed_off,
        messages=len(outcomes),
        outcomes=_counted(o.kind for o in outcomes),
        thumbs_up=sum(v.score > 0 for v in votes),
        thumbs_down=sum(v.score < 0 for v in votes),
        reply_p50=_percentile(replies, 50),
        reply_p95=_percentile(replies, 95),
        tokens=sum(tokens_per_day.values()),
        cost=sum(cost_per_day.values()) if cost_per_day else None,
        unpriced=tuple(sorted(unpriced)),
        per_day=_days(first, days, outcomes, votes, tokens_per_day, cost_per_day),
        groups=tuple(unanswered(bot, outcomes, votes)[:GROUPS_SHOWN]),
        reply_seconds=tuple(replies),
    )


def unanswered(
    bot: BotDefinition, outcomes: Sequence[Outcome], votes: Sequence[Feedback]
) -> list[Group]:
    """The messages the bot could not answer, grouped by similarity, largest group first."""
    disliked = {(v.conversation, v.message_id) for v in votes if v.score < 0}
    failed: list[tuple[str, str]] = []  # (question, reason)
    for o in outcomes:
        if o.question.startswith("/") or not o.question.strip():
            continue  # /human, or the "talk to a person" button: no question asked
        if o.kind in ("fallback", "handoff"):
            failed.append((o.question, o.kind))
        elif (o.conversation, o.message_id) in disliked:
            failed.append((o.question, "thumbs_down"))
    if not failed:
        return []
    alike: dict[str, list[tuple[str, str]]] = {}  # the same words, written alike
    for question, reason in failed:
        alike.setdefault(_SPACES.sub(" ", question.strip().lower()), []).append((question, reason))
    texts = sorted(alike, key=lambda t: -len(alike[t]))[:MOST_QUESTIONS]
    groups = []
    for members in group_texts(texts, bot.settings.faq_language, bot.faq):
        said = [pair for i in members for pair in alike[texts[i]]]
        reasons = Counter(reason for _, reason in said)
        examples = tuple(alike[texts[i]][0][0] for i in members[:2])
        matches = bot.faq.search(texts[members[0]], top_k=1)
        closest = (
            Closest(matches[0].snippet.question, matches[0].snippet.source, matches[0].confidence)
            if matches
            else None
        )
        groups.append(
            Group(
                count=len(said),
                examples=examples,
                reasons={r: reasons[r] for r in ("fallback", "thumbs_down", "handoff")},
                closest=closest,
            )
        )
    groups.sort(key=lambda g: -g.count)
    return groups


def group_texts(
    texts: Sequence[str], language: str, background_index: FaqIndex | None = None
) -> list[list[int]]:
    """Groups of alike texts (their indexes), the most typical first in each.

    The texts are indexed with the bot's own FAQ retriever, and each is asked as a
    query: how alike two texts are is what each scores against the other, as a share
    of what it scores against itself, averaged both ways. Groups are then merged,
    most alike first, while the average likeness of all their pairs (average linkage,
    so one shared word does not chain topics together) is at least `SIMILAR`.

    The snippets of `background_index` (the bot's FAQ) are indexed too, but never
    grouped: they keep a word that a few texts share from counting as common as "the"
    does among those few alone.
    """
    background = background_index.snippets if background_index is not None else []
    # A source no FAQ file has ("?3"), so the texts are told from the background.
    questions = [FaqSnippet(question=t, answer="", source=f"?{i}") for i, t in enumerate(texts)]
    # With the bot's sentence encoder (`faq_retriever = "hybrid"`), meaning counts too.
    encoder = getattr(background_index, "encoder", None) if background_index else None
    extra: dict[str, Any] = {"encoder": encoder} if encoder is not None else {}
    index = FaqIndex([*questions, *background], language=language, **extra)
    everything = len(texts) + len(background)
    relative: list[dict[int, float]] = []
    for i, text in enumerate(texts):
        found = {
            int(m.snippet.source[1:]): m.confidence
            for m in index.search(text, top_k=everything)
            if m.snippet.source.startswith("?")
        }
        own = found.get(i, 0.0)
        relative.append({j: score / own for j, score in found.items()} if own > 0 else {})
    links: dict[int, dict[int, float]] = {i: {} for i in range(len(texts))}
    for i, found in enumerate(relative):
        for j in found:
            if j != i and j not in links[i]:
                alike = (found[j] + relative[j].get(i, 0.0)) / 2
                links[i][j] = links[j][i] = alike
    members: dict[int, list[int]] = {i: [i] for i in range(len(texts))}
    queue = [(-alike, i, j) for i, near in links.items() for j, alike in near.items() if i < j]
    heapq.heapify(queue)
    while queue:
        negative, a, b = heapq.heappop(queue)
        if a not in members or b not in members:
            continue  # merged into another group since
        average = links[a].get(b, 0.0) / (len(members[a]) * len(members[b]))
        if average != -negative:
            continue  # an older entry: the pair's current one is in the queue too
        if average < SIMILAR:
            break
        members[a] += members.pop(b)
        for other, total in links.pop(b).items():
            if other == a:
                continue
            del links[other][b]
            links[a][other] = links[other][a] = links[a].get(other, 0.0) + total
        links[a].pop(b, None)
        for other, total in links[a].items():
            pair = (min(a, other), max(a, other))
            heapq.heappush(queue, (-total / (len(members[a]) * len(members[other])), *pair))
    groups = []
    for group in members.values():
        # the most typical text first: the one most alike to the rest of its group
        groups.append(sorted(group, key=lambda i: -sum(relative[i].get(j, 0.0) for j in group)))
    return groups


def _counted(kinds: Any) -> dict[str, int]:
    counts = Counter(kinds)
    return {kind: counts[kind] for kind in KINDS if counts[kind]}


def _days(
    first: Any,
    days: int,
    outcomes: Sequence[Outcome],
    votes: Sequence[Feedback],
    tokens: Mapping[str, int],
    costs: Mapping[str, float],
) -> tuple[Day, ...]:
    outcomes_by_day: defaultdict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        outcomes_by_day[_day(o.at)].append(o)
    votes_by_day: defaultdict[str, list[Feedback]] = defaultdict(list)
    for v in votes:
        votes_by_day[_day(v.at)].append(v)
    result = []
    for n in range(max(days, 1)):
        day = (first + timedelta(days=n)).isoformat()
        theirs = outcomes_by_day[day]
        replies = [o.seconds for o in theirs if o.kind not in ("command", "relayed")]
        result.append(
            Day(
                day=day,
                outcomes=_counted(o.kind for o in theirs),
                thumbs_up=sum(v.score > 0 for v in votes_by_day[day]),
                thumbs_down=sum(v.score < 0 for v in votes_by_day[day]),
                reply_p50=_percentile(replies, 50),
                tokens=tokens.get(day, 0),
                cost=costs.get(day),
            )
        )
    return tuple(result)


def _table(days: Sequence[Day]) -> list[str]:
    header = ("day", "messages", *KINDS[:-1], "👍", "👎", "p50", "tokens", "cost")
    rows: list[tuple[str, ...]] = [header]
    for d in days:
        rows.append(
            (
                d.day,
                f"{d.messages:,}",
                *(f"{d.outcomes.get(kind, 0):,}" for kind in KINDS[:-1]),
                f"{d.thumbs_up:,}",
                f"{d.thumbs_down:,}",
                _seconds(d.reply_p50),
                f"{d.tokens:,}",
                _money(d.cost),
            )
        )
    widths = [max(_width(r[i]) for r in rows) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w - (_width(cell) - len(cell)))
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _width(text: str) -> int:
    """Columns a cell takes in a terminal: the vote emoji are two wide."""
    return len(text) + sum(1 for char in text if char in "👍👎")


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}" if value < 1 else f"{value:,.2f}"


def _short(text: str, limit: int = 60) -> str:
    text = _SPACES.sub(" ", text.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).date().isoformat()
