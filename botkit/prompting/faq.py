"""FAQ snippets: one Markdown file each, with YAML front matter, under `faq/`.

---
question: How do I reset my password?
questions: [I forgot my password, Can't log in]
tags: [account]
---
Open Settings → Account and choose **Reset password**.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from botkit.errors import Problem
from botkit.prompting.templates import did_you_mean

_YamlLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_KNOWN_KEYS = ("question", "questions", "tags", "handoff")
_FENCE = "---"


@dataclass(frozen=True, slots=True)
class FaqSnippet:
    """One answer and the ways customers ask for it."""

    question: str
    answer: str
    source: str
    questions: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    handoff: bool = False
    """When this snippet is the best match, the conversation goes to a person."""


def load_faq(folder: Path) -> tuple[list[FaqSnippet], list[Problem]]:
    """Every snippet under `folder/faq/`, and a problem for each file that is not one."""
    snippets: list[FaqSnippet] = []
    problems: list[Problem] = []
    # Sorted as Paths sort, by their parts, but without comparing Path objects, and
    # named relative to the folder by slicing: at 100,000 snippets pathlib's own
    # comparisons and relative_to() cost more than reading the files.
    faq = folder / "faq"
    within = len(faq.as_posix()) + 1
    for path in sorted(faq.rglob("*.md"), key=lambda p: p.parts):
        source = "faq/" + path.as_posix()[within:]
        try:
            snippets.append(parse_snippet(path.read_text(encoding="utf-8"), source))
        except SnippetError as err:
            problems.append(Problem(path, err.message, err.line))
        except (OSError, UnicodeDecodeError) as err:
            problems.append(Problem(path, f"cannot read: {err}"))
    return snippets, problems


class SnippetError(ValueError):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def parse_snippet(text: str, source: str) -> FaqSnippet:
    lines = text.splitlines()
    if not lines or lines[0].strip() != _FENCE:
        raise SnippetError("missing front matter: start the file with '---', then 'question: …'", 1)
    try:
        end = next(i for i, line in enumerate(lines[1:], start=1) if line.strip() == _FENCE)
    except StopIteration:
        raise SnippetError("front matter is not closed by a '---' line", 1) from None
    try:
        meta = simple_front_matter(lines[1:end])
        if meta is None:
            meta = yaml.load("\n".join(lines[1:end]), Loader=_YamlLoader)
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 2 if err.problem_mark else 1
        raise SnippetError(f"invalid front matter: {err.problem}", line) from err
    if not isinstance(meta, dict):
        raise SnippetError("front matter must be 'key: value' lines", 2)
    unknown = sorted(set(meta) - set(_KNOWN_KEYS))
    if unknown:
        raise SnippetError(
            f"unknown front-matter key '{unknown[0]}' (known: {', '.join(_KNOWN_KEYS)})",
            _line_of_key(lines, unknown[0]),
        )
    question = meta.get("question")
    if not isinstance(question, str) or not question.strip():
        raise SnippetError("front matter has no 'question'", 2)
    answer = "\n".join(lines[end + 1 :]).strip()
    if not answer:
        raise SnippetError("the answer (the text after the front matter) is empty", end + 1)
    return _snippet(meta, question, answer, source, lines)


def snippet_from_values(values: Mapping[str, Any], source: str) -> FaqSnippet:
    """A snippet given as Python values (a bot defined in code): the front matter's keys and
    `answer`, checked as a file's are."""
    known = (*_KNOWN_KEYS, "answer")
    unknown = sorted(str(key) for key in set(values) - set(known))
    if unknown:
        hint = did_you_mean(unknown[0], known)
        raise SnippetError(f"unknown key '{unknown[0]}'{hint} (known: {', '.join(known)})")
    question, answer = values.get("question"), values.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise SnippetError("it has no 'question'")
    if not isinstance(answer, str) or not answer.strip():
        raise SnippetError("it has no 'answer'")
    return _snippet(dict(values), question, answer.strip(), source, [])


def _snippet(
    meta: dict[str, Any], question: str, answer: str, source: str, lines: list[str]
) -> FaqSnippet:
    handoff = meta.get("handoff", False)
    if not isinstance(handoff, bool):
        raise SnippetError("'handoff' must be true or false", _line_of_key(lines, "handoff"))
    return FaqSnippet(
        question=question.strip(),
        answer=answer,
        source=source,
        questions=_strings(meta, "questions", lines),
        tags=_strings(meta, "tags", lines),
        handoff=handoff,
    )


# The front matter most snippets have, read without YAML (a FAQ of 100,000 files spent
# half its loading time constructing YAML objects): `key: text`, `key: "text"`,
# `key: [a, b]` and `key:` followed by `  - item` lines, with plain text that begins with a
# letter and holds none of YAML's special characters. Anything else — a colon, a comment
# after a value, an escape, YAML's other scalars (yes, null, numbers, dates) — is YAML's.
_KEY_LINE = re.compile(r"([a-z]+):(?: (.*))?\Z")
_ITEM_LINE = re.compile(r"\s+- (.*)\Z")
_PLAIN = re.compile(r"[A-Za-z][^:#\[\]{},\"'`|>&*!%@\\\t]*\Z")
_QUOTED = re.compile(r"\"[^\"\\]*\"\Z|'[^']*'\Z")
_NOT_STRINGS = frozenset(("yes", "no", "true", "false", "on", "off", "null", "y", "n"))


def simple_front_matter(lines: list[str]) -> dict[str, Any] | None:
    """What YAML makes of these lines, when they are of the simple kind; else None."""
    meta: dict[str, Any] = {}
    blocks: set[str] = set()  # keys given as "key:" and then "  - item" lines
    items: list[str] | None = None  # the block list being read
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        if items is not None and (item := _ITEM_LINE.match(line)):
            if (text := _scalar(item[1])) is None:
                return None
            items.append(text)
            continue
        key_line = _KEY_LINE.match(line.rstrip())
        if key_line is None:
            return None
        key, value = key_line[1], (key_line[2] or "").strip()
        items = None
        blocks.discard(key)
        if not value:
            meta[key] = items = []
            blocks.add(key)
        elif value.startswith("[") and value.endswith("]"):
            inner = value[1:-1].strip()
            parts = [_scalar(part.strip()) for part in inner.split(",")] if inner else []
            if any(part is None for part in parts):
                return None
            meta[key] = parts
        elif (text := _scalar(value)) is not None:
            meta[key] = text
        else:
            return None
    for key in blocks:  # "key:" with nothing under it is null in YAML
        meta[key] = meta[key] or None
    return meta


def _scalar(text: str) -> str | None:
    if _QUOTED.match(text):
        return text[1:-1]
    if _PLAIN.match(text) and text.lower() not in _NOT_STRINGS:
        return text.rstrip()
    return None


def _strings(meta: dict[str, Any], key: str, lines: list[str]) -> tuple[str, ...]:
    value = meta.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str | int | float) for v in value
    ):
        raise SnippetError(f"'{key}' must be a list of strings", _line_of_key(lines, key))
    return tuple(str(v).strip() for v in value if str(v).strip())


def _line_of_key(lines: list[str], key: str) -> int | None:
    return next((i for i, line in enumerate(lines, 1) if line.startswith(f"{key}:")), None)
