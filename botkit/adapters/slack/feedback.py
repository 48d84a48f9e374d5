"""Feedback on Slack: 👍 and 👎 buttons (Block Kit) under each answer, and their clicks.

A click's vote is stored before it is acknowledged; then the answer's buttons show
the vote (its button turns green). A 👎 may bring a "Talk to a person" button, whose
click is the customer's `/human`. The action ids share the prefix `botkit_feedback_`,
beside the Slack desk's `botkit_handoff_…` on the same app; each button's value names
the answer: the conversation and the customer's message it replies to.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from botkit.feedback import BUTTONS, OFFER

PREFIX = "botkit_feedback_"
ACTIONS = re.compile(rf"^{PREFIX}")
BLOCK_ID = "botkit_feedback"
UP, DOWN, HUMAN = f"{PREFIX}up", f"{PREFIX}down", f"{PREFIX}human"
SCORES = {UP: 1, DOWN: -1}


@dataclass(frozen=True, slots=True)
class Click:
    """What a click on a feedback button asks: a vote (`score`), or a person (`score` None)."""

    score: int | None
    conversation_id: str
    message_id: str


def buttons(
    conversation_id: str, message_id: str, *, chosen: int | None = None, offer: bool = False
) -> dict[str, Any]:
    """The actions block under an answer: 👍 and 👎 (the vote `chosen` in green), and the
    offer of a person."""
    value = json.dumps({"c": conversation_id, "m": message_id}, separators=(",", ":"))
    elements: list[dict[str, Any]] = []
    for action_id, score in SCORES.items():
        button: dict[str, Any] = {
            "type": "button",
            "action_id": action_id,
            "text": {"type": "plain_text", "text": BUTTONS[score], "emoji": True},
            "value": value,
        }
        if score == chosen:
            button["style"] = "primary"
        elements.append(button)
    if offer:
        elements.append(
            {
                "type": "button",
                "action_id": HUMAN,
                "text": {"type": "plain_text", "text": OFFER},
                "value": value,
            }
        )
    return {"type": "actions", "block_id": BLOCK_ID, "elements": elements}


def parse(action: dict[str, Any]) -> Click | None:
    """The click a `block_actions` action carries; None for one that is not botkit's."""
    action_id = action.get("action_id")
    try:
        value = json.loads(str(action.get("value")))
    except ValueError:
        return None
    if action_id not in (UP, DOWN, HUMAN) or not isinstance(value, dict):
        return None
    conversation_id, message_id = value.get("c"), value.get("m")
    if not (isinstance(conversation_id, str) and isinstance(message_id, str)):
        return None
    return Click(SCORES.get(str(action_id)), conversation_id, message_id)


def replaced(blocks: list[dict[str, Any]], actions: dict[str, Any]) -> list[dict[str, Any]]:
    """A message's blocks with its feedback buttons replaced."""
    return [actions if block.get("block_id") == BLOCK_ID else block for block in blocks]
