"""The renderer's data: turn input, drawn lines, page layouts. Plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

LineKind = Literal["header", "text", "code"]
Box = tuple[int, int, int, int]
Span = tuple[int, int, int]  # (turn index, char start, char end) into the turn's full text


@dataclass(frozen=True)
class TurnInput:
    """One chat turn. ``start`` > 0 continues a turn begun on an earlier page: layout starts at that
    character offset and the header says "(continued)"; spans still index the full ``text``."""

    role: str
    text: str
    number: int | None = None  # shown in the header; default: position in the input + 1
    timestamp: str | float | datetime | None = None  # floats are epoch seconds, shown in UTC
    start: int = 0


@dataclass(frozen=True)
class Line:
    """One drawn line. ``box`` is the full ink strip (x0, y0, x1, y1) at the page's side, so it can be
    cropped for a line recogniser; ``text`` is the exact source substring (the header text for
    headers), ``drawn`` what was rasterised (placeholders such as [U+1F600] expanded)."""

    box: Box
    text: str
    drawn: str
    span: Span
    kind: LineKind


@dataclass(frozen=True)
class Run:
    """Characters drawn in one call with one font, at ``x`` pixels from the line's left edge."""

    x: float
    font: str
    text: str


@dataclass(frozen=True)
class PlacedLine:
    line: Line
    baseline: int
    runs: tuple[Run, ...]
    band: Box | None  # header band rectangle, if drawn


class LayoutPos(NamedTuple):
    """A place in the turns given to the layout: index into that list, char offset in the turn.
    (The memory's store speaks of turn numbers instead: ``optmem.store.TurnPos``.)"""

    turn_index: int
    char: int


@dataclass(frozen=True)
class Segment:
    """The part of one turn on a page: text[start:end] (end = where the next page continues)."""

    turn_index: int
    start: int
    end: int
    header: str | None


@dataclass(frozen=True)
class PageLayout:
    """Everything needed to draw a page, computed without drawing.

    ``start`` is the (turn index, char offset) of the page's first character; ``end`` is where the
    next page continues: (t, offset) inside turn t, or (t + 1, 0) when turn t ended on this page.
    """

    side: int
    font_px: int
    margin_px: int
    placed: tuple[PlacedLine, ...]
    segments: tuple[Segment, ...]
    source_text: str
    start: LayoutPos
    end: LayoutPos
    header_band_grey: int

    @property
    def lines(self) -> tuple[Line, ...]:
        return tuple(p.line for p in self.placed)

    @property
    def font_keys(self) -> tuple[str, ...]:
        used = {r.font for p in self.placed for r in p.runs}
        return tuple(k for k in ("sans", "bold", "mono", "cjk") if k in used)
