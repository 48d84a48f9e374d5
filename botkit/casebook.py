"""Conversation cases: what a bot must say, written down in `prompts/NAME/tests/*.yaml`.

    - name: deposit question
      turns:
        - user: How much is the deposit?
          faq: deposit               # the FAQ snippet chosen first (its file name)
          reply_contains: ["50 €"]
        - user: And can I pay by card?
          reply_not_contains: [deposit]

A case may set `user` (`{id, name, language}`, or just the id), `channel` and
`vars` (laid over the TOML's). A turn may expect `faq`, `reply_contains`,
`reply_not_contains`, `reply_matches` (regular expressions), `kind`, `handoff`
and, with `botkit test --llm`, `judge` (a criterion the model checks the reply
against). Every mistake in a file is a `Problem` with its line.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from botkit.errors import Problem
from botkit.messages import ReplyKind
from botkit.prompting.faq import FaqSnippet
from botkit.prompting.templates import did_you_mean

TESTS = "tests"
DEFAULT_USER_ID = "test-user"
KINDS: tuple[str, ...] = typing.get_args(ReplyKind)
_CASE_KEYS = ("name", "turns", "user", "channel", "vars")
_TURN_KEYS = (
    "user",
    "faq",
    "reply_contains",
    "reply_not_contains",
    "reply_matches",
    "kind",
    "handoff",
    "judge",
)
_USER_KEYS = ("id", "name", "language")


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseUser:
    """Who talks in a case (the template's `user`)."""

    id: str = DEFAULT_USER_ID
    name: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseTurn:
    """One customer message and what the reply to it must be."""

    line: int
    user: str
    faq: str | None = None
    reply_contains: tuple[str, ...] = ()
    reply_not_contains: tuple[str, ...] = ()
    reply_matches: tuple[re.Pattern[str], ...] = ()
    kind: str | None = None
    handoff: bool | None = None
    judge: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One conversation, held from the start with a fresh memory."""

    name: str
    path: Path
    """The case file, as messages show it (relative to the bot home)."""
    line: int
    turns: tuple[CaseTurn, ...]
    user: CaseUser = field(default_factory=CaseUser)
    channel: str = "console"
    vars: Mapping[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def snippet_name(snippet: FaqSnippet) -> str:
    """How cases and `botkit eval` name a snippet: its file under `faq/`, without `.md`."""
    name = snippet.source.removeprefix("faq/")
    return name.removesuffix(".md")


class SnippetNames:
    """Resolves what an author writes for a snippet: "billing/deposit", or "deposit"
    when only one file has that stem."""

    def __init__(self, snippets: Sequence[FaqSnippet]) -> None:
        self.names = [snippet_name(s) for s in snippets]
        stems: dict[str, list[str]] = {}
        for name in self.names:
            stems.setdefault(name.rsplit("/", 1)[-1], []).append(name)
        self._by_stem = {stem: names[0] for stem, names in stems.items() if len(names) == 1}

    def resolve(self, written: str) -> str | None:
        written = written.strip().removeprefix("faq/").removesuffix(".md")
        if written in self.names:
            return written
        return self._by_stem.get(written)

    def unknown(self, written: str) -> str:
        """The message for a name that resolves to no snippet."""
        if not self.names:
            return f"no FAQ snippet '{written}': this bot has no faq/*.md files"
        return (
            f"no FAQ snippet '{written}'{did_you_mean(written, self.names)}; "
            f"snippets: {', '.join(self.names)}"
        )


def case_files(folder: Path) -> list[Path]:
    tests = folder / TESTS
    if not tests.is_dir():
        return []
    return sorted(p for p in tests.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_cases(
    folder: Path, snippets: SnippetNames, *, shown: Path | None = None
) -> tuple[list[Case], list[Problem]]:
    """Every case under `folder/tests/`, and a problem (file:line) for each mistake.

    `shown` is the folder as messages show it (relative to the bot home).
    """
    cases: list[Case] = []
    problems: list[Problem] = []
    for path in case_files(folder):
        display = (shown or folder) / TESTS / path.name
        reader = _CaseFile(display, snippets)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            problems.append(Problem(display, f"cannot read: {err}"))
            continue
        cases += reader.parse(text)
        problems += reader.problems
    return cases, problems


class _CaseFile:
    """Reads one case file from YAML nodes, which know their lines."""

    def __init__(self, path: Path, snippets: SnippetNames) -> None:
        self.path = path
        self.snippets = snippets
        self.problems: list[Problem] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def parse(self, text: str) -> list[Case]:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as err:
            line = err.problem_mark.line + 1 if err.problem_mark else 1
            self._problem(f"invalid YAML: {err.problem}", line)
            return []
        if root is None:
            self._problem("empty: write a list of cases, each starting with '- name: …'", 1)
            return []
        if not isinstance(root, yaml.SequenceNode):
            self._problem("a case file is a list of cases, each starting with '- name: …'", root)
            return []
        cases = [self._case(node, number) for number, node in enumerate(root.value, 1)]
        self.problems.sort(key=lambda p: p.line or 0)
        return [case for case in cases if case is not None]

    def _case(self, node: yaml.Node, number: int) -> Case | None:
        before = len(self.problems)
        keys = self._mapping(node, _CASE_KEYS, "case")
        if keys is None:
            return None
        name = self._text(keys["name"]) if "name" in keys else f"case {number}"
        turns: list[CaseTurn] = []
        if "turns" not in keys:
            self._problem("a case needs 'turns': a list of '- user: …' messages", node)
        elif not isinstance(keys["turns"], yaml.SequenceNode) or not keys["turns"].value:
            self._problem("'turns' must be a list of '- user: …' messages", keys["turns"])
        else:
            turns = [t for t in map(self._turn, keys["turns"].value) if t is not None]
        user = self._user(keys["user"]) if "user" in keys else CaseUser()
        channel = self._text(keys["channel"]) if "channel" in keys else "console"
        variables: dict[str, Any] = {}
        if "vars" in keys:
            value = self._value(keys["vars"])
            if isinstance(value, dict):
                variables = {str(k): v for k, v in value.items()}
            else:
                self._problem("'vars' must be a table of names and values", keys["vars"])
        if len(self.problems) > before or name is None or channel is None or user is None:
            return None
        return Case(
            name=name,
            path=self.path,
            line=_line(node),
            turns=tuple(turns),
            user=user,
            channel=channel,
            vars=variables,
        )

    def _turn(self, node: yaml.Node) -> CaseTurn | None:
        before = len(self.problems)
        keys = self._mapping(node, _TURN_KEYS, "turn")
        if keys is None:
            return None
        if "user" not in keys:
            self._problem("a turn needs 'user': the customer's message", node)
            return None
        text = self._text(keys["user"])
        if text is not None and not text.strip():
            self._problem("'user' is empty: write the customer's message", keys["user"])
        faq = None
        if "faq" in keys and (written := self._text(keys["faq"])) is not None:
            faq = self.snippets.resolve(written)
            if faq is None:
                self._problem(self.snippets.unknown(written), keys["faq"])
        kind = self._text(keys["kind"]) if "kind" in keys else None
        if kind is not None and kind not in KINDS:
            self._problem(f"unknown kind '{kind}' (kinds: {', '.join(KINDS)})", keys["kind"])
        handoff = None
        if "handoff" in keys:
            handoff = self._value(keys["handoff"])
            if not isinstance(handoff, bool):
                self._problem("'handoff' must be true or false", keys["handoff"])
        judge = self._text(keys["judge"]) if "judge" in keys else None
        patterns = []
        for pattern, where in self._texts(keys, "reply_matches"):
            try:
                patterns.append(re.compile(pattern))
            except re.error as err:
                self._problem(f"'reply_matches': invalid regular expression: {err}", where)
        contains = tuple(t for t, _ in self._texts(keys, "reply_contains"))
        not_contains = tuple(t for t, _ in self._texts(keys, "reply_not_contains"))
        if len(self.problems) > before or text is None:
            return None
        return CaseTurn(
            line=_line(node),
            user=text,
            faq=faq,
            reply_contains=contains,
            reply_not_contains=not_contains,
            reply_matches=tuple(patterns),
            kind=kind,
            handoff=handoff if isinstance(handoff, bool) else None,
            judge=judge,
        )

    def _user(self, node: yaml.Node) -> CaseUser | None:
        if isinstance(node, yaml.ScalarNode):
            id = self._text(node)
            return None if id is None else CaseUser(id=id)
        keys = self._mapping(node, _USER_KEYS, "user")
        if keys is None:
            return None
        values = {key: self._text(value) for key, value in keys.items()}
        if None in values.values():
            return None
        return CaseUser(
            id=values.get("id") or DEFAULT_USER_ID,
            name=values.get("name"),
            language=values.get("language"),
        )

    # -- YAML nodes ----------------------------------------------------------------------

    def _mapping(
        self, node: yaml.Node, known: Sequence[str], what: str
    ) -> dict[str, yaml.Node] | None:
        if not isinstance(node, yaml.MappingNode):
            self._problem(f"a {what} must be a set of 'key: value' lines", node)
            return None
        keys: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self._value(key_node)
            if not isinstance(key, str) or key not in known:
                hint = did_you_mean(str(key), known)
                self._problem(
                    f"unknown key '{key}' in a {what}{hint}; known keys: {', '.join(known)}",
                    key_node,
                )
            elif key in keys:
                self._problem(f"'{key}' is given twice in this {what}", key_node)
            else:
                keys[key] = value_node
        return keys

    def _text(self, node: yaml.Node) -> str | None:
        value = self._value(node)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        self._problem("expected a text", node)
        return None

    def _texts(self, keys: Mapping[str, yaml.Node], key: str) -> list[tuple[str, yaml.Node]]:
        """A text or a list of texts, each with its node (for the line of a bad one)."""
        if key not in keys:
            return []
        node = keys[key]
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        texts = []
        for item in items:
            if (text := self._text(item)) is not None:
                texts.append((text, item))
        return texts

    def _value(self, node: yaml.Node) -> Any:
        return self._constructor.construct_object(node, deep=True)

    def _problem(self, message: str, where: yaml.Node | int) -> None:
        line = where if isinstance(where, int) else _line(where)
        self.problems.append(Problem(self.path, message, line))


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1
