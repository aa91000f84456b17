"""Line breaking: one turn's text → visual lines, pure and linear in the text length.

Each source line (split at \\n, \\r\\n, \\r) is wrapped greedily: widths are running sums of cached
advances, and on overflow the line breaks at the last opportunity (after spaces in Latin text,
between CJK characters unless kinsoku forbids it), or at the overflowing character when there is
none (a URL, a hash, a 500-character word). Chars between the break and the overflow are measured
once more for the next line, at most one line's worth per break, so the total stays linear.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from .metrics import Metrics
from .schema import Run
from .text import CLOSING, NEWLINE, break_between, fence_open_at, line_start_of

_FENCE = re.compile(r"[ \t]*```")


@dataclass(frozen=True)
class Item:
    """One visual line of a turn before it is placed on a page."""

    start: int
    end: int  # span end; trailing spaces excluded
    next_pos: int  # where the following visual line starts
    kind: str
    runs: tuple[Run, ...]
    width: float
    drawn: str


def measure_runs(text: str, i: int, e: int, kind: str, m: Metrics,
                 tab_width: int) -> tuple[tuple[Run, ...], float, str]:
    """Draw runs of text[i:e] (one per font change, tab or placeholder), its width and drawn text."""
    table, kern_left = m.tables[kind], m.kern_left
    runs: list[Run] = []
    drawn: list[str] = []
    cur: list[str] = []
    cur_font = prev_font = None
    cur_x = x = 0.0
    prev = ""
    for k in range(i, e):
        ch = text[k]
        if ch == "\t":
            if cur:
                runs.append(Run(cur_x, cur_font, "".join(cur)))
                cur = []
            cur_font = prev_font = None
            x += m.tab_advance(x, tab_width)
            drawn.append(ch)
            continue
        g = table.get(ch) or m.glyph(kind, ch)
        if g.is_placeholder:
            if cur:
                runs.append(Run(cur_x, cur_font, "".join(cur)))
                cur = []
            cur_font = prev_font = None
            runs.append(Run(x, g.font, g.drawn))
            x += g.advance
            drawn.append(g.drawn)
            continue
        adv = g.advance
        if g.font == prev_font and prev in kern_left[g.font]:
            adv += m.kern(g.font, prev + ch)
        if g.font != cur_font:
            if cur:
                runs.append(Run(cur_x, cur_font, "".join(cur)))
                cur = []
            cur_font, cur_x = g.font, x
        cur.append(ch)
        x += adv
        prev, prev_font = ch, g.font
        drawn.append(ch)
    if cur:
        runs.append(Run(cur_x, cur_font, "".join(cur)))
    return tuple(runs), x, "".join(drawn)


def _wrap(text: str, a: int, b: int, nxt: int, kind: str, m: Metrics, width: float,
          tab_width: int, first_width: float | None = None) -> Iterator[Item]:
    """Visual lines of the source line text[a:b]; ``nxt`` is where the following source line starts.
    ``first_width`` (if given) is the room of the first visual line, shortened by an inline header."""
    prose = kind == "text"
    table, kern_left = m.tables[kind], m.kern_left
    full_width = width
    if first_width is not None:
        width = first_width
    i = a
    while i < b:
        x = 0.0
        j = i
        last_break = -1
        has_content = pending = False
        prev, prev_font = "", None
        end = b
        while j < b:
            ch = text[j]
            if ch == "\t":
                adv, font = m.tab_advance(x, tab_width), None
            else:
                g = table.get(ch) or m.glyph(kind, ch)
                adv = g.advance
                if g.is_placeholder:
                    font = None
                else:
                    font = g.font
                    if font == prev_font and prev in kern_left[font]:
                        adv += m.kern(font, prev + ch)
            if prose and (ch == " " or ch == "\t"):
                # Spaces may hang past the edge: they are trimmed from the line they end.
                pending = pending or has_content
                x += adv
                prev, prev_font = ch, font
                j += 1
                continue
            if prose and has_content and ch not in CLOSING and (pending or break_between(prev, ch)):
                last_break = j
            pending = False
            if x + adv > width and j > i:
                if prose and last_break > i:
                    end = last_break
                elif ch in CLOSING and j - 1 > i:
                    end = j - 1  # kinsoku: carry the previous char along rather than start with a closer
                else:
                    end = j
                break
            x += adv
            has_content = True
            prev, prev_font = ch, font
            j += 1
        e = end
        while e > i and text[e - 1] in " \t":
            e -= 1
        start, i = i, end
        if prose:
            while i < b and text[i] in " \t":
                i += 1
        next_pos = nxt if i >= b else i
        width = full_width
        if e == start:
            yield Item(start, start, next_pos, kind, (), 0.0, "")
        else:
            runs, w, drawn = measure_runs(text, start, e, kind, m, tab_width)
            yield Item(start, e, next_pos, kind, runs, w, drawn)


def visual_lines(text: str, start: int, m: Metrics, width: float, tab_width: int,
                  first_width: float | None = None) -> Iterator[Item]:
    """All visual lines of a turn from ``start``; code fences (```) switch to monospace code lines.
    The very first visual line gets ``first_width`` when given (it shares its row with the header)."""
    n = len(text)
    pos = start
    line_start = line_start_of(text, start)
    fence = fence_open_at(text, line_start)
    while pos < n:
        nl = NEWLINE.search(text, pos)
        le, nxt = (nl.start(), nl.end()) if nl else (n, n)
        fence_line = _FENCE.match(text, line_start, le) is not None
        kind = "code" if (fence or fence_line) else "text"
        if fence_line:
            fence = not fence
        if pos == le:
            yield Item(pos, pos, nxt, kind, (), 0.0, "")
        else:
            yield from _wrap(text, pos, le, nxt, kind, m, width, tab_width, first_width)
        first_width = None
        pos = line_start = nxt
