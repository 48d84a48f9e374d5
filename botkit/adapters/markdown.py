"""The model's Markdown, walked once for every chat platform's markup.

Paragraphs, headings, lists and rules are laid out the same way everywhere (chat
platforms have no lists: they become "•" and "1." lines); how text, emphasis,
code, quotes and links look is each platform's own, in a subclass's hooks, in
the manner of the standard library's `html.parser.HTMLParser`.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token


@cache
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    # Raw HTML in an answer is shown as text, never passed on as markup.
    return MarkdownIt("commonmark", {"html": False}).enable("strikethrough")


class MarkdownWalker:
    """Lays out the blocks of a Markdown text; subclasses write what is inside them."""

    list_indent = "   "
    rule = "———"

    def __init__(self) -> None:
        self.breaks = 0  # line breaks owed before the next block
        self.lists: list[int | None] = []  # per open list: the next number, None for bullets

    def walk(self, markdown: str) -> None:
        for token in _parser().parse(markdown):
            self._block(token)

    # The hooks a platform fills in.

    def emit(self, text: str) -> None:
        raise NotImplementedError

    def has_output(self) -> bool:
        raise NotImplementedError

    def inline(self, token: Token) -> None:
        """Text, emphasis, code spans, links and images inside a block."""
        raise NotImplementedError

    def heading(self, *, opening: bool) -> None:
        raise NotImplementedError

    def quote(self, *, opening: bool) -> None:
        raise NotImplementedError

    def code_block(self, token: Token) -> None:
        raise NotImplementedError

    # The layout every platform shares.

    def start_block(self) -> None:
        if self.breaks and self.has_output():
            self.emit("\n" * self.breaks)
        self.breaks = 0

    def end_block(self, breaks: int) -> None:
        self.breaks = max(self.breaks, breaks)

    def _block(self, token: Token) -> None:
        kind = token.type
        if kind == "inline":
            for child in token.children or []:
                self.inline(child)
        elif kind == "paragraph_open":
            self.start_block()
        elif kind == "paragraph_close":
            self.end_block(1 if token.hidden else 2)
        elif kind == "heading_open":
            self.start_block()
            self.heading(opening=True)
        elif kind == "heading_close":
            self.heading(opening=False)
            self.end_block(2)
        elif kind in ("bullet_list_open", "ordered_list_open"):
            self.end_block(1)
            start = token.attrGet("start")
            self.lists.append(None if kind == "bullet_list_open" else int(start or 1))
        elif kind in ("bullet_list_close", "ordered_list_close"):
            self.lists.pop()
            self.end_block(1 if self.lists else 2)
        elif kind == "list_item_open":
            self.start_block()
            number = self.lists[-1]
            if number is not None:
                self.lists[-1] = number + 1
            marker = "•" if number is None else f"{number}."
            self.emit(self.list_indent * (len(self.lists) - 1) + marker + " ")
        elif kind == "list_item_close":
            self.end_block(1)
        elif kind == "blockquote_open":
            self.start_block()
            self.quote(opening=True)
        elif kind == "blockquote_close":
            self.quote(opening=False)
            self.end_block(2)
        elif kind in ("fence", "code_block"):
            self.start_block()
            self.code_block(token)
            self.end_block(2)
        elif kind == "hr":
            self.start_block()
            self.emit(self.rule)
            self.end_block(2)
