"""Checking what a platform sends before anything reads it.

Slack signs its requests and Telegram sends a secret with its updates, but a
genuine request can still carry a field of a type nobody expects: an object where
an id belongs, a list where an object belongs, an integer beyond 64 bits. Read as
it is, it ends in a traceback far from the edge ("unhashable type: 'dict'").
Each channel describes the fields it reads as a `Checked` model (pydantic, strict:
JSON's types as they are) and calls `check` at its edge; a `PayloadError` names the
first field at fault, and the edge acknowledges the request with one warning line
and does nothing else (an error status would only make the platform send it again).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from botkit.errors import PayloadError

__all__ = ["Checked", "check"]


class Checked(BaseModel):
    """The fields a channel reads of a payload, with their types; any other field is the
    platform's business and may be anything."""

    # Strict: no "1" for 1 or 1 for True. Fields not named are ignored, not kept.
    model_config = ConfigDict(strict=True, extra="ignore")


def check(model: type[Checked], data: Any, prefix: str = "") -> None:
    """`data` as `model` describes it, and storable; else `PayloadError` naming the field
    (`prefix` leads its path, e.g. "payload.")."""
    try:
        model.model_validate(data)
    except ValidationError as err:
        raise PayloadError(describe(err, prefix)) from None
    try:
        # What no store could keep, wherever it is: a lone surrogate, an integer beyond
        # 64 bits, nesting deeper than any platform sends.
        orjson.dumps(data)
    except orjson.JSONEncodeError as err:
        raise PayloadError(f"{prefix.rstrip('.') or 'the payload'}: {err}") from None


_SENT = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "a boolean",
    "list_type": "an array",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
}


def describe(err: ValidationError, prefix: str = "") -> str:
    """The first field at fault, as a path (`event.user.id`; `prefix` leads it), and what is
    wrong with it."""
    first = err.errors(include_url=False)[0]
    # A member of a union chosen by a `Discriminator` shows in the path by its tag, which
    # is written "<so>" to tell it from a field's name.
    path = [str(part) for part in first["loc"] if not str(part).startswith("<")]
    where = prefix + ".".join(path) if path else prefix.rstrip(".") or "the payload"
    value = first["input"]
    if first["type"] in ("missing", "too_short"):
        return f"{where}: {'missing' if first['type'] == 'missing' else 'empty'}"
    if first["type"] == "value_error":  # a model's own check: its message says it all
        return f"{where}: {value!r:.40} {first['ctx']['error']}"
    expected = _EXPECTED.get(first["type"])
    if expected is not None:
        sent = _SENT.get(type(value), "a number" if isinstance(value, int | float) else "null")
        return f"{where}: {sent} where {expected} belongs"
    return f"{where}: {first['msg'][:1].lower()}{first['msg'][1:]} (not {value!r:.40})"
