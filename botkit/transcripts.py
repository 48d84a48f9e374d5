"""`botkit transcripts`: conversations as they happened, with what became of each message,
the votes on the answers and what people wrote, as JSON Lines or Markdown.

Conversations are found through the outcome log (those with a message since a day, of
a user); each is read whole from the store, from the day on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botkit.messages import Feedback, Outcome, Turn
from botkit.stores.base import Store

FORMATS = ("jsonl", "md")
_WHO = {"user": "Customer", "assistant": "Bot"}


@dataclass(frozen=True, slots=True)
class Transcript:
    """One conversation: its turns, and the outcomes and votes that name them."""

    conversation: str
    bot: str
    channel: str
    users: tuple[str, ...]
    turns: tuple[Turn, ...]
    outcomes: dict[str, Outcome]
    """By the id of the customer's message."""
    votes: dict[str, Feedback]
    """By the id of the customer's message the answer replies to."""

    def to_json(self) -> dict[str, Any]:
        messages = []
        for turn in self.turns:
            entry: dict[str, Any] = {
                "role": turn.role,
                "content": turn.content,
                "time": _time(turn.at),
            }
            if turn.name:
                entry["name"] = turn.name
            if turn.id:
                entry["id"] = turn.id
            if turn.reply_to:
                entry["reply_to"] = turn.reply_to
            if turn.kind:
                entry["kind"] = turn.kind
            if turn.role == "user" and (outcome := self.outcomes.get(turn.id or "")):
                entry["outcome"] = _outcome(outcome)
            if turn.role == "assistant" and (vote := self.votes.get(turn.reply_to or "")):
                entry["feedback"] = {"score": vote.score, "comment": vote.comment}
            messages.append(entry)
        return {
            "conversation": self.conversation,
            "bot": self.bot,
            "channel": self.channel,
            "users": list(self.users),
            "messages": messages,
        }

    def markdown(self) -> str:
        started = _time(self.turns[0].at) if self.turns else ""
        users = ", ".join(self.users)
        lines = [f"## {self.conversation}", "", f"{self.channel} · {users} · {started}", ""]
        for turn in self.turns:
            if turn.role == "agent":
                who = f"{turn.name} (support)" if turn.name else "Support"
            else:
                who = _WHO.get(turn.role, turn.role)
            clock = datetime.fromtimestamp(turn.at, UTC).strftime("%H:%M:%S")
            lines.append(f"**{who}** {clock}")
            lines += [f"> {line}" if line else ">" for line in turn.content.splitlines() or [""]]
            notes = []
            if turn.role == "user" and (outcome := self.outcomes.get(turn.id or "")):
                notes.append(_note(outcome))
            if turn.role == "assistant" and (vote := self.votes.get(turn.reply_to or "")):
                notes.append(("👍" if vote.score > 0 else "👎") + _comment(vote))
            if notes:
                lines.append(f"_{' · '.join(notes)}_")
            lines.append("")
        return "\n".join(lines)


async def transcripts(
    store: Store, bot: str, *, since: float | None = None, user: str | None = None
) -> AsyncIterator[Transcript]:
    """The conversations of `bot` with a message since `since` (of `user`), oldest first."""
    found = await store.outcomes(bot=bot, since=since, user=user)
    for conversation in dict.fromkeys(o.conversation for o in found):
        outcomes = await store.outcomes(conversation=conversation)
        votes = await store.feedback(conversation=conversation)
        _, turns = await store.turns_since(conversation, 0)
        if since is not None:
            turns = [t for t in turns if t.at >= since]
        first = outcomes[0] if outcomes else found[0]
        yield Transcript(
            conversation=conversation,
            bot=first.bot,
            channel=first.channel,
            users=tuple(dict.fromkeys(o.user for o in outcomes)),
            turns=tuple(turns),
            outcomes={o.message_id: o for o in outcomes},
            votes={v.message_id: v for v in votes},
        )


def render(transcript: Transcript, form: str) -> str:
    """One transcript as a JSON line or a Markdown section."""
    if form == "jsonl":
        return json.dumps(transcript.to_json(), ensure_ascii=False)
    return transcript.markdown()


def _outcome(outcome: Outcome) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": outcome.kind, "seconds": round(outcome.seconds, 3)}
    for name in ("faq", "faq_score", "model", "error", "cost"):
        if (value := getattr(outcome, name)) is not None:
            data[name] = value
    if outcome.prompt_tokens or outcome.completion_tokens:
        data["tokens"] = {"prompt": outcome.prompt_tokens, "completion": outcome.completion_tokens}
    return data


_KIND = {
    "model": "answered by the model",
    "faq": "answered from the FAQ",
    "fallback": "fallback (nothing matched)",
    "limit": "daily limit",
    "command": "command",
    "handoff": "handed to a person",
    "relayed": "relayed to the person",
}


def _note(outcome: Outcome) -> str:
    parts: Iterable[str] = [
        _KIND.get(outcome.kind, outcome.kind),
        f"{outcome.faq} ({outcome.faq_score:.2f})" if outcome.faq and outcome.faq_score else "",
        f"{outcome.seconds:.1f} s",
        f"{outcome.prompt_tokens + outcome.completion_tokens} tokens"
        if outcome.prompt_tokens or outcome.completion_tokens
        else "",
    ]
    return ", ".join(p for p in parts if p)


def _comment(vote: Feedback) -> str:
    return f' "{vote.comment}"' if vote.comment else ""


def _time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
