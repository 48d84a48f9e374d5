"""What `botkit check` knows about the template context: the shape of each value.

The fields of `bot`, `user`, `agent` and of a FAQ snippet, the keys of `vars`,
that `faq` is a list of snippets and `now` a datetime. Dataclass shapes are read
from the classes the composer renders with, so they never drift from them.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botkit.prompting.faq import FaqSnippet

HANDOFF_PREFIX = "handoff"
"""Templates whose name starts with this are rendered when a person takes a conversation
over: only they know the `agent`."""


class Shape:
    """What the checker knows about a value."""


@dataclass(frozen=True, slots=True)
class Unknown(Shape):
    """Anything: every attribute, key and call is allowed."""


@dataclass(frozen=True, slots=True)
class Record(Shape):
    """An object with fixed fields, such as `user` or a FAQ snippet."""

    label: str
    fields: Mapping[str, Shape]


@dataclass(frozen=True, slots=True)
class Table(Shape):
    """A mapping with known keys, such as `vars` (its methods, like `.items()`, are allowed)."""

    label: str
    keys: Mapping[str, Shape]
    source: str
    """Where the keys are written, for the hint: "bots/shop.toml [vars]"."""


@dataclass(frozen=True, slots=True)
class ListOf(Shape):
    item: Shape


@dataclass(frozen=True, slots=True)
class Value(Shape):
    """A plain Python value: its attributes are those of its type (`now.year`, `x.upper`)."""

    type: type


ANY = Unknown()
TEXT = Value(str)
LOOP = Record(
    "loop",
    {
        name: ANY
        for name in (
            "index",
            "index0",
            "revindex",
            "revindex0",
            "first",
            "last",
            "length",
            "depth",
            "depth0",
            "previtem",
            "nextitem",
            "cycle",
            "changed",
        )
    },
)


def record_of(cls: type, label: str) -> Record:
    """The shape of a dataclass, read from its fields, so the checker never drifts from it."""
    hints = typing.get_type_hints(cls)
    return Record(label, {f.name: _shape_of_hint(hints[f.name]) for f in dataclasses.fields(cls)})


def _shape_of_hint(hint: Any) -> Shape:
    origin = typing.get_origin(hint)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return ListOf(_shape_of_hint(args[0]) if args else ANY)
    if hint in (str, bool, int, float, datetime):
        return Value(hint)
    return ANY  # `str | None` and the like: the value may be None, so judge nothing


def shape_of_value(value: Any, label: str, source: str) -> Shape:
    """The shape of a TOML value: tables keep their keys, arrays their first item's shape."""
    if isinstance(value, Mapping):
        return Table(
            label,
            {str(k): shape_of_value(v, f"{label}.{k}", source) for k, v in value.items()},
            source,
        )
    if isinstance(value, list):
        return ListOf(shape_of_value(value[0], f"{label}[0]", source) if value else ANY)
    if isinstance(value, str | bool | int | float | datetime):
        return Value(type(value))
    return ANY


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateContext:
    """The names every template of a bot is rendered with (see `PromptComposer.context`)."""

    vars: Mapping[str, Any]
    vars_source: str
    """Where `vars` comes from, for hints: "bots/shop.toml [vars]"."""

    def names(self, template: str) -> dict[str, Shape]:
        from botkit.prompting.composer import BotInfo, UserInfo

        names: dict[str, Shape] = {
            "bot": record_of(BotInfo, "bot"),
            "user": record_of(UserInfo, "user"),
            "channel": TEXT,
            "now": Value(datetime),
            "faq": ListOf(record_of(FaqSnippet, "a FAQ snippet")),
            "vars": shape_of_value(dict(self.vars), "vars", self.vars_source),
        }
        if template.startswith(HANDOFF_PREFIX):
            names["agent"] = Record("agent", {"name": TEXT})
        return names
