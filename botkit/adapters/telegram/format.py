"""A Markdown answer as Telegram messages: HTML that Telegram accepts, each under its limit.

The Markdown is parsed once (markdown-it-py) into runs of visible text, each
carrying the tags around it. Splitting happens on the visible text, where
Telegram's limit applies, at the boundaries `split_text` prefers; each piece
then closes the tags still open at its end and reopens them at the start of the
next one, so a cut can never leave a formatting span broken. Every piece also
keeps its plain text, to send when Telegram still refuses the formatting.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botkit.adapters.formatting import split_text
from botkit.adapters.markdown import MarkdownWalker

if TYPE_CHECKING:
    from markdown_it.token import Token

MESSAGE_LIMIT = 4096
"""Telegram's limit on a message's text after entity parsing, in UTF-16 code units."""

_LINK_SCHEMES = ("http://", "https://", "tg://", "mailto:")
_LANGUAGE = re.compile(r"^[A-Za-z0-9_+#.-]{1,32}$")
_INLINE_TAGS = {"strong_open": "b", "em_open": "i", "s_open": "s"}

Tag = tuple[str, str]
"""A tag's name and its attributes as written, e.g. ("a", ' href="https://…"')."""


@dataclass(frozen=True, slots=True)
class Piece:
    """One message: its Telegram HTML and the same text without formatting."""

    html: str
    text: str


@dataclass(frozen=True, slots=True)
class _Run:
    text: str
    tags: tuple[Tag, ...]


def to_pieces(markdown: str, limit: int = MESSAGE_LIMIT) -> list[Piece]:
    """The messages that show `markdown`, each at most `limit` characters when displayed."""
    runs = _Renderer().render(markdown)
    text = "".join(run.text for run in runs)
    return [
        Piece(_html(_clip(runs, start, end)), text[start:end]) for start, end in _spans(text, limit)
    ]


def to_html(markdown: str) -> str:
    """`markdown` as one piece of Telegram HTML, however long."""
    return _html(_Renderer().render(markdown))


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _spans(text: str, limit: int, chars: int | None = None) -> list[tuple[int, int]]:
    """Where to cut the visible text: `split_text`'s pieces of at most `chars` characters,
    located in `text`, cut again where astral characters (two UTF-16 units) overfill one."""
    chars = chars or limit
    # Code blocks are already tags here: fence characters in the text are just characters,
    # so hide them from split_text (which would close and reopen them), keeping positions.
    neutral = text.replace("`", "'").replace("~", "-")
    spans: list[tuple[int, int]] = []
    cursor = 0
    for piece in split_text(neutral, chars):
        start = neutral.index(piece, cursor)
        cursor = start + len(piece)
        length = utf16_length(text[start:cursor])
        tighter = max(16, chars * limit // length - 1)
        if length > limit and tighter < chars:
            spans += [(start + a, start + b) for a, b in _spans(piece, limit, tighter)]
        else:
            spans.append((start, cursor))
    return spans


def _clip(runs: list[_Run], start: int, end: int) -> list[_Run]:
    clipped: list[_Run] = []
    position = 0
    for run in runs:
        run_end = position + len(run.text)
        if run_end > start and position < end:
            text = run.text[max(start - position, 0) : end - position]
            clipped.append(_Run(text, run.tags))
        position = run_end
    return clipped


def _html(runs: list[_Run]) -> str:
    """Runs as HTML: each tag opened where its first run starts and closed after its last."""
    out: list[str] = []
    open_tags: tuple[Tag, ...] = ()
    for run in runs:
        common = 0
        while common < min(len(open_tags), len(run.tags)) and open_tags[common] == run.tags[common]:
            common += 1
        out += [f"</{name}>" for name, _ in reversed(open_tags[common:])]
        out += [f"<{name}{attributes}>" for name, attributes in run.tags[common:]]
        out.append(html.escape(run.text, quote=False))
        open_tags = run.tags
    out += [f"</{name}>" for name, _ in reversed(open_tags)]
    return "".join(out)


class _Renderer(MarkdownWalker):
    """Turns the Markdown into runs of visible text with the tags around them."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[_Run] = []
        self.tags: list[Tag] = []
        self.quotes = 0
        self.links: list[bool] = []  # per open link: whether it became an <a>

    def render(self, markdown: str) -> list[_Run]:
        self.walk(markdown)
        return self.runs

    def has_output(self) -> bool:
        return bool(self.runs)

    def heading(self, *, opening: bool) -> None:
        if opening:
            self.tags.append(("b", ""))
        else:
            self.tags.pop()

    def quote(self, *, opening: bool) -> None:
        self.quotes += 1 if opening else -1
        if opening and self.quotes == 1:  # Telegram cannot nest quotes
            self.tags.append(("blockquote", ""))
        elif not opening and self.quotes == 0:
            self.tags.pop()

    def code_block(self, token: Token) -> None:
        language = token.info.split(maxsplit=1)[0] if token.info.strip() else ""
        code: tuple[Tag, ...] = (("pre", ""),)
        if _LANGUAGE.match(language):
            code += (("code", f' class="language-{html.escape(language)}"'),)
        # A code block cannot sit inside other entities: it stands on its own.
        self.emit(token.content.rstrip("\n"), code)

    def inline(self, token: Token) -> None:
        kind = token.type
        if kind in ("text", "text_special"):
            self.emit(token.content)
        elif kind in ("softbreak", "hardbreak"):
            self.emit("\n")
        elif kind in _INLINE_TAGS:
            self.tags.append((_INLINE_TAGS[kind], ""))
        elif kind in ("strong_close", "em_close", "s_close"):
            self.tags.pop()
        elif kind == "code_inline":
            self.emit(token.content, (*self.tags, ("code", "")))
        elif kind == "link_open":
            href = str(token.attrGet("href") or "")
            linked = href.lower().startswith(_LINK_SCHEMES)
            if linked:
                self.tags.append(("a", f' href="{html.escape(href)}"'))
            self.links.append(linked)
        elif kind == "link_close":
            if self.links.pop():
                self.tags.pop()
        elif kind == "image":
            src = str(token.attrGet("src") or "")
            alt = token.content or src
            if src.lower().startswith(_LINK_SCHEMES) and not self.links:
                self.emit(alt, (*self.tags, ("a", f' href="{html.escape(src)}"')))
            else:
                self.emit(alt)

    def emit(self, text: str, tags: tuple[Tag, ...] | None = None) -> None:
        if not text:
            return
        tags = tuple(self.tags) if tags is None else tags
        if self.runs and self.runs[-1].tags == tags:
            self.runs[-1] = _Run(self.runs[-1].text + text, tags)
        else:
            self.runs.append(_Run(text, tags))
