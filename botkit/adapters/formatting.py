"""Splitting a long Markdown answer into messages a platform accepts.

Cuts fall at the last paragraph break that fits, else a line break, else the
end of a sentence, else a space; a fenced code block cut in two is closed at
the end of one piece and reopened at the start of the next, so every piece
renders on its own. Channels convert each piece to their markup afterwards.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^(\s*)(```+|~~~+)(.*)$", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?…。！？][\"')\]]*\s")


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters that together hold all of `text`."""
    if limit < 16:
        raise ValueError("limit must be at least 16 characters")
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        fence_room = limit - 4  # room to close a code block with "\n```"
        cut = _cut_point(rest, fence_room)
        piece, rest = rest[:cut].rstrip(), rest[cut:].lstrip("\n ")
        if open_fence := _open_fence(piece):
            piece += "\n" + open_fence
            rest = f"{open_fence}{_fence_info(piece, open_fence)}\n{rest}"
        pieces.append(piece)
    if rest:
        pieces.append(rest)
    return pieces


def _cut_point(text: str, limit: int) -> int:
    window = text[: limit + 1]
    floor = limit // 3  # a cut much earlier than this wastes a message
    for boundary in ("\n\n", "\n"):
        at = window.rfind(boundary, floor)
        if at > 0:
            return at
    sentence_ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() > floor]
    if sentence_ends:
        return sentence_ends[-1]
    at = window.rfind(" ", floor)
    return at if at > 0 else limit


def _open_fence(piece: str) -> str | None:
    """The fence marker of a code block left open at the end of `piece`, if any."""
    open_marker = None
    for match in _FENCE.finditer(piece):
        marker = match[2]
        if open_marker is None:
            open_marker = marker
        elif marker.startswith(open_marker[0]) and len(marker) >= len(open_marker):
            open_marker = None
    return open_marker


def _fence_info(piece: str, marker: str) -> str:
    """The language tag of the last block opened with `marker`, to reopen it alike."""
    infos = [m[3].strip() for m in _FENCE.finditer(piece) if m[2] == marker]
    return infos[-2] if len(infos) >= 2 else ""
