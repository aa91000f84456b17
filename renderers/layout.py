"""Pagination: turns → PageLayouts (headers, continued turns, page packing, fill), no drawing.

Turns are packed onto pages in order; a turn longer than the room left continues on the next
page under a "(continued)" header. Line breaking itself is wrap.py.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import replace

from .config import RenderConfig, line_pitch
from .header import ELLIPSIS as _ELLIPSIS
from .header import format_header
from .metrics import Metrics, metrics_for
from .schema import LayoutPos, Line, PageLayout, PlacedLine, Run, Segment, TurnInput
from .wrap import Item, measure_runs, visual_lines

Turns = str | TurnInput | Sequence[TurnInput | tuple[str, str]]


def normalize_turns(turns: Turns) -> list[TurnInput]:
    """Accept a plain string (one turn without a header), (role, text) pairs or TurnInputs."""
    if isinstance(turns, str):
        return [TurnInput("", turns, number=1)]
    if isinstance(turns, TurnInput):
        turns = [turns]
    if not isinstance(turns, Sequence):
        raise TypeError(f"turns must be a str, a TurnInput or a sequence of them or of (role, text) pairs, "
                        f"got {type(turns).__name__}")
    out = []
    for i, t in enumerate(turns):
        if isinstance(t, TurnInput):
            turn = t
        elif isinstance(t, (tuple, list)) and len(t) == 2:
            turn = TurnInput(t[0], t[1])
        else:
            raise TypeError(f"turns[{i}]: expected a (role, text) pair or TurnInput, got {type(t).__name__}")
        if not isinstance(turn.role, str) or not isinstance(turn.text, str):
            raise TypeError(f"turns[{i}]: role and text must be str, got {type(turn.role).__name__} "
                            f"and {type(turn.text).__name__}")
        if not (isinstance(turn.start, int) and 0 <= turn.start <= len(turn.text)):
            raise ValueError(f"turns[{i}].start={turn.start!r} is outside the text (length {len(turn.text)})")
        if turn.number is not None and not isinstance(turn.number, int):
            raise TypeError(f"turns[{i}].number must be an int or None, got {type(turn.number).__name__}")
        if turn.number is None:
            turn = replace(turn, number=i + 1)
        out.append(turn)
    return out


def header_text(turn: TurnInput, continued: bool, cfg: RenderConfig) -> str:
    timestamp = turn.timestamp if cfg.show_timestamp else None
    return format_header(turn.role, turn.number, timestamp, continued=continued)


def _fit_header(header: str, m: Metrics, width: float, tab_width: int) -> tuple[tuple[Run, ...], float, str]:
    """Header runs, cut with an ellipsis if the header is wider than the line."""
    runs, w, drawn = measure_runs(header, 0, len(header), "header", m, tab_width)
    if w <= width:
        return runs, w, drawn
    room = width - m.glyph("header", _ELLIPSIS).advance
    lo, hi = 0, len(header)  # largest prefix that fits with the ellipsis (few calls: headers are short)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure_runs(header, 0, mid, "header", m, tab_width)[1] <= room:
            lo = mid
        else:
            hi = mid - 1
    cut = header[:lo] + _ELLIPSIS
    return measure_runs(cut, 0, len(cut), "header", m, tab_width)


class _PageBuilder:
    def __init__(self, cfg: RenderConfig, font_px: int, m: Metrics, start: tuple[int, int]):
        self.cfg, self.font_px, self.m, self.start = cfg, font_px, m, start
        self.y = cfg.margin_px
        self.placed: list[PlacedLine] = []
        self.segments: list[Segment] = []

    @property
    def empty(self) -> bool:
        return not self.placed and not self.segments

    def _box(self, width: float, x_off: float = 0.0) -> tuple[int, int, int, int]:
        x0 = self.cfg.margin_px + math.floor(x_off)
        x1 = min(self.cfg.page_px - self.cfg.margin_px, max(x0 + 1, self.cfg.margin_px + math.ceil(x_off + width)))
        return x0, self.y, x1, self.y + self.m.strip_px

    def place(self, line: Line, runs: tuple[Run, ...], band_right: int | None = None) -> None:
        """Add a line at the current row; ``band_right`` draws a header band from the margin to it."""
        band_box = None
        if band_right is not None:
            band_box = (self.cfg.margin_px, self.y, band_right,
                        self.y + min(self.m.strip_px, line_pitch(self.font_px, self.cfg.line_spacing)))
        self.placed.append(PlacedLine(line, self.y + self.m.ink_ascent, runs, band_box))

    def finish(self, turns: list[TurnInput], end: tuple[int, int]) -> PageLayout:
        parts = []
        for s in self.segments:
            body = turns[s.turn_index].text[s.start:s.end]
            parts.append(f"{s.header}\n{body}" if s.header is not None else body)
        return PageLayout(
            side=self.cfg.page_px, font_px=self.font_px, margin_px=self.cfg.margin_px,
            placed=tuple(self.placed), segments=tuple(self.segments), source_text="\n\n".join(parts),
            start=LayoutPos(*self.start), end=LayoutPos(*end), header_band_grey=self.cfg.header_band_grey,
        )


class WrapCache:
    """The visual lines of turns already wrapped, for a caller that lays out the same turns again
    and again (the open page is laid out anew on every turn that joins it): wrapping is most of a
    layout's time. Bounded to the ``max_turns`` most recently used."""

    def __init__(self, max_turns: int = 512):
        self._max = max_turns
        self._lines: OrderedDict[tuple, tuple[Item, ...]] = OrderedDict()

    def lines(self, text: str, start: int, m: Metrics, width: float, tab_width: int,
              first_width: float | None) -> tuple[Item, ...]:
        key = (text, start, m.font_px, width, tab_width, first_width)
        if key in self._lines:
            self._lines.move_to_end(key)
        else:
            self._lines[key] = tuple(visual_lines(text, start, m, width, tab_width, first_width))
            if len(self._lines) > self._max:
                self._lines.popitem(last=False)
        return self._lines[key]


def _paginate(turns: list[TurnInput], cfg: RenderConfig, font_px: int,
              wrapped: WrapCache | None = None) -> Iterator[PageLayout]:
    m = metrics_for(font_px)
    width = cfg.content_px
    pitch = line_pitch(font_px, cfg.line_spacing)
    bottom = cfg.page_px - cfg.margin_px
    strip = m.strip_px
    page: _PageBuilder | None = None
    band = cfg.header_style == "band"
    full_band = cfg.page_px - cfg.margin_px
    inline_gap = max(4, font_px // 2)
    for t, turn in enumerate(turns):
        with_header = cfg.headers and turn.role != ""
        # Inline header: the label opens the turn's first row and the text follows it on that row.
        inline = None
        if with_header and turn.start == 0 and cfg.header_placement == "inline":
            label = header_text(turn, False, cfg)
            hruns, hw, hdrawn = _fit_header(label, m, width, cfg.tab_width)
            if hw <= width / 3:  # a long role gets a row of its own instead
                inline = (label, hruns, hw, hdrawn)
        first_width = width - inline[2] - inline_gap if inline else None
        items = (iter(wrapped.lines(turn.text, turn.start, m, width, cfg.tab_width, first_width)) if wrapped
                 else visual_lines(turn.text, turn.start, m, width, cfg.tab_width, first_width))
        item = next(items, None)
        pos = turn.start
        while True:
            if page is None:
                page = _PageBuilder(cfg, font_px, m, (t, pos))
            gap = cfg.turn_gap_px if not page.empty else 0
            use_inline = inline is not None and pos == turn.start
            if use_inline:
                need = gap + strip
            else:
                # A header never ends a page alone: it needs room for the turn's first line too.
                need = gap + (pitch if with_header else 0) + (strip if (item is not None or with_header) else 0)
            if page.y + need > bottom and not page.empty:
                yield page.finish(turns, (t, pos))
                page, gap = _PageBuilder(cfg, font_px, m, (t, pos)), 0
            page.y += gap
            seg_start = pos
            header = None
            if use_inline:
                header, hruns, hw, hdrawn = inline
                line = Line(page._box(hw), header, hdrawn, (t, seg_start, seg_start), "header")
                page.place(line, hruns, band_right=cfg.margin_px + math.ceil(hw) + inline_gap // 2 if band else None)
                if item is not None:
                    off = hw + inline_gap
                    if item.end > item.start:
                        line = Line(page._box(item.width, off), turn.text[item.start:item.end], item.drawn,
                                    (t, item.start, item.end), item.kind)
                        page.place(line, tuple(Run(r.x + off, r.font, r.text) for r in item.runs))
                    pos = item.next_pos
                    item = next(items, None)
                page.y += pitch
            elif with_header:
                header = header_text(turn, seg_start > 0, cfg)
                runs, w, drawn = _fit_header(header, m, width, cfg.tab_width)
                line = Line(page._box(w), header, drawn, (t, seg_start, seg_start), "header")
                page.place(line, runs, band_right=full_band if band else None)
                page.y += pitch
            if not page.segments and item is not None and page.y + strip > bottom:
                raise AssertionError("page geometry admits no text line; RenderConfig should have rejected it")
            while item is not None and page.y + strip <= bottom:
                if item.end > item.start:
                    line = Line(page._box(item.width), turn.text[item.start:item.end], item.drawn,
                                (t, item.start, item.end), item.kind)
                    page.place(line, item.runs)
                page.y += pitch
                pos = item.next_pos
                item = next(items, None)
            page.segments.append(Segment(t, seg_start, pos if item is not None else len(turn.text), header))
            if item is None:
                break
            yield page.finish(turns, (t, pos))
            page = None
    if page is not None:
        yield page.finish(turns, (len(turns), 0))


def choose_font_px(turns: list[TurnInput], cfg: RenderConfig) -> int:
    """Largest font size in the fill range whose layout fits on one page (binary search);
    the smallest size when nothing fits (the text then spans several pages)."""
    lo, hi = cfg.fill_range()

    def fits(px: int) -> bool:
        first = next(_paginate(turns, cfg, px), None)
        return first is None or first.end == (len(turns), 0)

    if not fits(lo):
        return lo
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def iter_layouts(turns: Turns, config: RenderConfig | None = None, *,
                 wrapped: WrapCache | None = None) -> Iterator[PageLayout]:
    cfg = config or RenderConfig()
    norm = normalize_turns(turns)
    font_px = choose_font_px(norm, cfg) if cfg.fill else cfg.font_px
    return _paginate(norm, cfg, font_px, wrapped)


def layout_pages(turns: Turns, config: RenderConfig | None = None, *,
                 wrapped: WrapCache | None = None) -> list[PageLayout]:
    """Lay out ``turns`` on pages without drawing (the memory layer re-packs its open page on every
    turn and draws only when it seals a page); ``wrapped`` keeps turns' lines for the next call."""
    return list(iter_layouts(turns, config, wrapped=wrapped))
