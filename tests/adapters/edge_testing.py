"""What the tests of the channels' edges share: reading the log for the one warning an
unreadable payload gets (and for tracebacks), and hypothesis strategies that spoil a
payload Slack or Telegram would send: a field deleted, or replaced by a value of any
JSON type (objects, lists, huge numbers, odd text), at any depth."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st
from starlette.requests import ClientDisconnect

UNREADABLE = "that botkit cannot read"


def unreadable(records: Sequence[logging.LogRecord]) -> list[str]:
    """The warnings for payloads acknowledged and ignored."""
    return [r.getMessage() for r in records if UNREADABLE in r.getMessage()]


def tracebacks(records: Sequence[logging.LogRecord]) -> list[str]:
    """Errors and tracebacks, but for the fake platform servers' own: they log a client
    that hung up mid-request (the bot cancelling its typing indicator, say) as an error."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in records
        if (r.exc_info or r.levelno >= logging.ERROR)
        and not (r.exc_info and isinstance(r.exc_info[1], ClientDisconnect))
    ]


# --- spoiling payloads ---------------------------------------------------------------------


def json_values(*, exotic: bool = True) -> st.SearchStrategy[Any]:
    """Any JSON value, small: huge numbers among them; `exotic` adds what only Python's
    own JSON writes (NaN, Infinity) and lone surrogates, as `\\ud800` escapes."""
    text = st.text(st.characters(codec=None if exotic else "utf-8"), max_size=12)
    numbers = st.one_of(
        st.integers(min_value=-(2**31), max_value=2**31),
        st.sampled_from([2**53, 2**63, -(2**63) - 1, 2**64, 10**30, 10**400]),
        st.floats(allow_nan=exotic, allow_infinity=exotic),
    )
    return st.recursive(
        st.one_of(st.none(), st.booleans(), numbers, text),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)
        ),
        max_leaves=6,
    )


@st.composite
def spoiled(
    draw: st.DrawFn,
    payload: dict[str, Any],
    names: Sequence[str] = (),
    values: st.SearchStrategy[Any] | None = None,
) -> Any:
    """`payload` with one to three fields deleted, replaced by any of `values` (JSON) or
    added, at any depth; `names` are field names worth adding where they are missing
    (those the edge reads)."""
    spoilt = copy.deepcopy(payload)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        _spoil_once(draw, spoilt, names, json_values() if values is None else values)
    return spoilt


def _spoil_once(
    draw: st.DrawFn, node: Any, names: Sequence[str], values: st.SearchStrategy[Any]
) -> None:
    while True:
        if isinstance(node, dict):
            missing = [name for name in names if name not in node]
            if missing and (not node or draw(st.integers(0, 3)) == 0):
                node[draw(st.sampled_from(missing))] = draw(values)  # a field it lacked
                return
            if not node:
                return
            key: Any = draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            key = draw(st.integers(min_value=0, max_value=len(node) - 1))
        else:
            return
        child = node[key]
        if isinstance(child, dict | list) and child and draw(st.integers(0, 2)):
            node = child  # deeper, two times in three
            continue
        if isinstance(node, dict) and draw(st.integers(0, 4)) == 0:
            del node[key]
        else:
            node[key] = draw(values)
        return
