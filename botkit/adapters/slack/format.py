"""A Markdown answer as Slack messages: mrkdwn, each piece under the size `chat.update` takes.

Slack's mrkdwn is not Markdown: bold is `*x*`, italics `_x_`, links `<url|text>`,
and `&`, `<`, `>` must be escaped or Slack reads them as markup (a model writing
`<!channel>` would otherwise notify everyone). The Markdown is parsed with
markdown-it-py and written out as mrkdwn; the mrkdwn is then cut with
`split_text`, which closes and reopens a code block cut in two.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from botkit.adapters.formatting import split_text
from botkit.adapters.markdown import MarkdownWalker

if TYPE_CHECKING:
    from markdown_it.token import Token

UPDATE_LIMIT = 3_500
"""Characters per message: `chat.update` refuses far less text than `chat.postMessage`."""

_LINK_SCHEMES = ("http://", "https://", "mailto:")
_MARKERS = {"strong": "*", "em": "_", "s": "~"}


def to_mrkdwn(markdown: str) -> str:
    """`markdown` as one Slack mrkdwn text, however long."""
    return _Renderer().render(markdown)


def to_pieces(markdown: str, limit: int = UPDATE_LIMIT) -> list[str]:
    """The messages that show `markdown`, each at most `limit` characters of mrkdwn."""
    return split_text(to_mrkdwn(markdown), limit)


def escape(text: str) -> str:
    """Text Slack shows as written: `&`, `<` and `>` escaped, nothing else."""
    return html.escape(text, quote=False)


def _link_target(href: str) -> str | None:
    if not href.lower().startswith(_LINK_SCHEMES):
        return None
    # Inside <…> a "|" ends the address and ">" ends the link.
    return escape(href).replace("|", "%7C")


class _Renderer(MarkdownWalker):
    """Writes the Markdown out as mrkdwn."""

    list_indent = "    "
    rule = "───"

    def __init__(self) -> None:
        super().__init__()
        self.out: list[str] = []
        self.quotes: list[int] = []  # per open quote: where its text starts in `out`
        self.links: list[tuple[str | None, int]] = []  # per open link: target, text start
        self.depth = dict.fromkeys(_MARKERS, 0)  # open spans of each kind

    def render(self, markdown: str) -> str:
        self.walk(markdown)
        return "".join(self.out)

    def emit(self, text: str) -> None:
        self.out.append(text)

    def has_output(self) -> bool:
        return bool(self.out)

    def heading(self, *, opening: bool) -> None:
        self._span("strong", opening=opening)

    def quote(self, *, opening: bool) -> None:
        if opening:
            self.quotes.append(len(self.out))
            return
        start = self.quotes.pop()
        quoted = "".join(self.out[start:])
        del self.out[start:]
        self.out.append("\n".join(f"> {line}".rstrip() for line in quoted.split("\n")))

    def code_block(self, token: Token) -> None:
        # Slack has no language tags on code blocks.
        self.out.append(f"```\n{escape(token.content.rstrip())}\n```")

    def inline(self, token: Token) -> None:
        kind = token.type
        if kind in ("text", "text_special", "html_inline"):
            self.out.append(escape(token.content))
        elif kind in ("softbreak", "hardbreak"):
            self.out.append("\n")
        elif kind.endswith("_open") and kind[:-5] in _MARKERS:
            self._span(kind[:-5], opening=True)
        elif kind.endswith("_close") and kind[:-6] in _MARKERS:
            self._span(kind[:-6], opening=False)
        elif kind == "code_inline":
            content = escape(token.content)
            self.out.append(content if self.links else f"`{content}`")
        elif kind == "link_open":
            self.links.append((_link_target(str(token.attrGet("href") or "")), len(self.out)))
        elif kind == "link_close":
            target, start = self.links.pop()
            label = "".join(self.out[start:])
            if target is not None:
                del self.out[start:]
                same = label == target or token.markup == "autolink"
                self.out.append(f"<{target}>" if same or not label else f"<{target}|{label}>")
        elif kind == "image":
            alt = escape(token.content)
            target = _link_target(str(token.attrGet("src") or ""))
            if target is None or self.links:
                self.out.append(alt)
            else:
                self.out.append(f"<{target}|{alt}>" if alt else f"<{target}>")

    def _span(self, kind: str, *, opening: bool) -> None:
        """Bold, italics or strikethrough: only the outermost span of a kind is marked (Slack
        cannot nest `*` in `*`), and link text is never marked (Slack shows it as written)."""
        if not opening:
            self.depth[kind] -= 1
        if self.depth[kind] == 0 and not self.links:
            self.out.append(_MARKERS[kind])
        if opening:
            self.depth[kind] += 1
