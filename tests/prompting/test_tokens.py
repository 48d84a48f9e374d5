from __future__ import annotations

from botkit.prompting.tokens import MESSAGE_OVERHEAD_TOKENS, count_message_tokens


def test_the_estimate_is_conservative_for_english() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 20  # about 200 real tokens
    assert count_message_tokens(text) >= 200 + MESSAGE_OVERHEAD_TOKENS
    assert count_message_tokens(text) <= 2 * 200 + MESSAGE_OVERHEAD_TOKENS


def test_non_ascii_characters_count_one_token_each() -> None:
    assert count_message_tokens("你好世界") == 4 + MESSAGE_OVERHEAD_TOKENS
    assert count_message_tokens("") == MESSAGE_OVERHEAD_TOKENS
