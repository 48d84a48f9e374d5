from __future__ import annotations

import dataclasses

import pytest

from botkit.messages import IncomingMessage, Reply, Usage


def test_incoming_message_is_frozen_and_keyed_per_bot_and_channel() -> None:
    message = IncomingMessage(
        channel="telegram", bot="shop", conversation_id="42", user_id="7", text="hi"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.text = "changed"  # type: ignore[misc]
    other_channel = dataclasses.replace(message, channel="slack")
    assert message.conversation_key != other_channel.conversation_key
    assert message.timestamp.tzinfo is not None


def test_reply_reports_truncation_and_total_usage() -> None:
    reply = Reply(text="cut", conversation_id="1", finish_reason="length", usage=Usage(10, 5))
    assert reply.truncated
    assert reply.usage.total_tokens == 15
    assert not Reply(text="ok", conversation_id="1").truncated
