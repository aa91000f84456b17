"""Recognised line strips joined back into the page's source text, from the layout alone.

The renderer lays a page out as header, ``\\n``, body, with turns separated by a blank line. Span
continuity says whether a wrap split a word; vertical gaps and line fill say where the source had
newlines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from renderers.header import normalize_separators

if TYPE_CHECKING:  # the renderer's Line; only .box, .span and .kind are read
    from renderers import Line

__all__ = ["column_right", "join_lines"]

_NEWLINE_MARGIN = 1.15


def _row_pitch(lines: Sequence[Line]) -> float:
    """Typical distance between consecutive rows: the most common positive step of box tops."""
    steps = [b.box[1] - a.box[1] for a, b in zip(lines, lines[1:]) if b.box[1] > a.box[1]]
    if not steps:
        return float(max((ln.box[3] - ln.box[1] for ln in lines), default=1)) or 1.0
    return float(np.median(steps))


def _line_separator(prev: Line, nxt: Line, nxt_text: str, pitch: float, right: int) -> str:
    """What the source had between two consecutive text lines of the same turn."""
    if nxt.span[1] == prev.span[2]:
        return ""  # the wrap split a word (or CJK run): nothing was skipped between the spans
    rows = round((nxt.box[1] - prev.box[1]) / pitch) if pitch > 0 else 1
    if rows >= 2:
        return "\n" * rows  # empty source lines take a row each and are not recorded as Lines
    if prev.kind == "code" or nxt.kind == "code":
        return "\n"  # code wraps never skip characters, so a gap is a newline
    # Prose wraps at spaces only when the next word did not fit: if it would have fit on the
    # previous line with room to spare, that line ended at a source newline instead. The word's
    # width is estimated from the next line's mean advance; the 15 % margin keeps wide words
    # (max_connections) from passing for newlines.
    first_word = nxt_text.split(" ", 1)[0] if nxt_text else ""
    char_w = (nxt.box[2] - nxt.box[0]) / max(1, len(nxt_text))
    room = right - prev.box[2]
    if first_word and room > _NEWLINE_MARGIN * char_w * (len(first_word) + 1):
        return "\n"
    return " "


def join_lines(lines: Sequence[Line], texts: Sequence[str], *, right: int | None = None) -> str:
    """Recognised line texts joined the way the renderer's ``page.source_text`` is laid out.

    Turn segments are separated by a blank line; a header is followed by a newline; within a
    segment, contiguous spans join without a space, gaps become a space or newline(s).
    ``right`` is the text column's right edge in the lines' coordinates (default: the rightmost
    box edge); engines pass :func:`column_right`. The separators are exact when the recognised
    texts are, except for runs of spaces (one space), blank lines at a segment's start or end and
    a source newline right where the line was full anyway, which leave no trace in the layout.
    """
    if len(lines) != len(texts):
        raise ValueError(f"join_lines: {len(lines)} lines but {len(texts)} texts")
    if not lines:
        return ""
    pitch = _row_pitch(lines)
    if right is None:
        right = max(ln.box[2] for ln in lines)
    out: list[str] = []
    prev: Line | None = None
    for line, text in zip(lines, texts):
        text = text.strip()
        if line.kind == "header":
            # The recogniser drops the spaces around the header's separators.
            text = normalize_separators(text)
        if prev is None:
            pass
        elif line.kind == "header" or line.span[0] != prev.span[0]:
            out.append("\n\n")  # a new turn segment
        elif prev.kind == "header":
            out.append("\n")
        else:
            out.append(_line_separator(prev, line, text, pitch, right))
        out.append(text)
        prev = line
    return "".join(out)


def column_right(lines: Sequence[Line], side: int) -> int:
    """The text column's right edge on a page ``side`` px wide: pages have equal margins, so it
    mirrors the leftmost line start."""
    return side - min((ln.box[0] for ln in lines), default=0)
