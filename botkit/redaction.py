"""Redaction: what a customer should not have typed, replaced before it goes anywhere.

A bot's `redact` setting names the kinds to look for (`card`, `email`, `phone`,
`iban`) and adds its own patterns; each match becomes `[card]`, `[email]`, … in the
text the pipeline stores, sends to the LLM and relays to people. Card numbers are
replaced only when the Luhn check passes and IBANs only when their check digits
do, so an order number or a tracking code is kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from botkit.settings import RedactSettings

_SEPARATORS = re.compile(r"[ .\-]")


@dataclass(frozen=True, slots=True)
class _Kind:
    """One kind of text to redact: where it may be, and whether a candidate is one."""

    name: str
    pattern: re.Pattern[str]
    length: Callable[[str], int] | None = None
    """How much of a candidate is of this kind (the longest valid start, cut at a
    separator; 0: none of it); None: every match is."""


def luhn(digits: str) -> bool:
    """The Luhn checksum every payment card number passes."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _iban_valid(text: str) -> bool:
    compact = text.replace(" ", "").replace("-", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in moved)) % 97 == 1


def _card_valid(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and luhn(digits)


_DATE = re.compile(r"^\d{1,2}[./-]\d{1,2}[./-]\d{2,4}$")
_US_NUMBER = re.compile(r"^\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}$")


def _phone_valid(text: str) -> bool:
    """A phone number is written as one: an international prefix, a leading 0 or area code
    in parentheses, or the North American 3-3-4 grouping; 7 to 15 digits. A bare run of
    digits (an order number) or a date is not one."""
    digits = sum(char.isdigit() for char in text)
    if not 7 <= digits <= 15 or _DATE.match(text):
        return False
    return text.startswith(("+", "(", "0")) or bool(_US_NUMBER.match(text))


def _longest(valid: Callable[[str], bool]) -> Callable[[str], int]:
    """The longest start of a candidate that is valid, ending before a separator: a card
    number followed by "12/25", or an IBAN followed by a word, is still found."""

    def length(candidate: str) -> int:
        ends = [len(candidate)]
        ends += [m.start() for m in reversed(list(_SEPARATORS.finditer(candidate)))]
        return next((end for end in ends if valid(candidate[:end])), 0)

    return length


BUILTIN: dict[str, _Kind] = {
    "email": _Kind(
        "email",
        re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}"),
    ),
    "iban": _Kind(
        "iban",
        re.compile(r"(?<!\w)[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){11,30}(?!\w)", re.IGNORECASE),
        _longest(_iban_valid),
    ),
    "card": _Kind(
        "card",
        re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,22}(?!\w)"),
        _longest(_card_valid),
    ),
    "phone": _Kind(
        "phone",
        re.compile(
            r"(?<![\w+/.-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?"
            r"\d{1,4}(?:[ .-]?\d{2,4}){1,5}(?![\w/])"
        ),
        lambda candidate: len(candidate) if _phone_valid(candidate) else 0,
    ),
}
"""The built-in kinds, in the order they are looked for: an e-mail address may hold
digits, and a card number's digit groups could pass for a phone number's."""


class Redactor:
    """Replaces each kind a bot redacts with `[kind]`; `redactor(text)` is the result."""

    def __init__(self, settings: RedactSettings) -> None:
        wanted = set(settings.builtin)
        kinds: list[_Kind] = [kind for name, kind in BUILTIN.items() if name in wanted]
        kinds += [_Kind(p.name, re.compile(p.regex)) for p in settings.patterns]
        self._kinds: Sequence[_Kind] = kinds

    def __bool__(self) -> bool:
        """Whether there is anything to redact at all."""
        return bool(self._kinds)

    def __call__(self, text: str) -> str:
        for kind in self._kinds:
            text = kind.pattern.sub(_replacement(kind), text)
        return text


def _replacement(kind: _Kind) -> Callable[[re.Match[str]], str]:
    placeholder = f"[{kind.name}]"

    def replace(match: re.Match[str]) -> str:
        found = match[0]
        if kind.length is None:
            return placeholder
        end = kind.length(found)
        return placeholder + found[end:] if end else found

    return replace
