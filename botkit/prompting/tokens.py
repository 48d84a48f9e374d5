"""Token counts without a tokenizer download.

Exact tokenizers (tiktoken and friends) fetch their vocabularies at run time,
which fails offline, and differ between models anyway. botkit estimates
instead, on the safe side: one token per 3 ASCII characters (English averages
about 4) plus one per non-ASCII character (CJK averages about 1), plus the
4 tokens of framing every chat message costs. Over-counting only trims history
a little early; under-counting would overflow the model's context.
"""

from __future__ import annotations

MESSAGE_OVERHEAD_TOKENS = 4


def count_message_tokens(text: str) -> int:
    """A conservative estimate of the tokens one chat message costs."""
    non_ascii = len(text) - len(text.encode("ascii", "ignore"))
    ascii_chars = len(text) - non_ascii
    return -(-ascii_chars // 3) + non_ascii + MESSAGE_OVERHEAD_TOKENS
