"""A page drawn as its layout grows: the open page, redrawn on every turn that joins it.

Drawing a page from scratch, resampling it to the size a reader is sent and encoding it took
~60 ms a turn, nearly all of it spent on lines and rows that had not changed. A Canvas keeps the
last drawing and its views and redoes only the rows the new lines reach. Every image it gives is
byte-identical to ``draw_layout(layout)`` and ``downsample(image, side)`` of the same layout
(tests/test_canvas.py), so a page looks the same whether it was drawn in one go or turn by turn.

Two facts make that exact rather than close:

- a page's coverage is the max over its glyph masks, which does not depend on the order glyphs
  are stamped in: a layout that extends the last one by more lines only needs those stamped;
- a LANCZOS view's row depends only on the input rows in its window (renderers.lanczos gives
  Pillow's rows for a band, bit for bit), so only the view rows whose window meets a changed row
  are made again.

Views are made ahead, on each drawing, at every side the canvas is told to keep (the sides a
reader is sent, ``Canvas(keep=...)``) or that was asked of this page or the last, that is no
smaller than the side asked last. An open page's view grows to larger sides as it fills (a profile
sends no image that costs more than its text), and a side first asked of a half-full page would
otherwise be resampled over all its lines at once, in the request that asks for it (15-25 ms); a
smaller side is seldom asked again of a page that grows. A page is often first drawn with 20-30
lines (until then its image costs more than its text), so a drawing brings up to date the views
that showed the drawing before it, the side asked last, and only one view further behind: the
first drawings of a page make its views one by one, smallest first, not all at once.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

from .draw import BACKGROUND, ink, stamp_lines
from .lanczos import downsample_rows, weights
from .page import downsample
from .schema import PageLayout


class Canvas:
    """The last page drawn, its coverage and the views made of it, for one open page."""

    def __init__(self, keep: Iterable[int] = ()) -> None:
        """``keep``: sides whose views are made ahead from a page's first drawing, before any is asked."""
        self._keep = frozenset(keep)
        self._layout: PageLayout | None = None
        self._cover: np.ndarray | None = None
        self._pixels: np.ndarray | None = None
        self._changes: list[tuple[int, int] | None] = []  # rows each drawing of this page changed
        self._views: dict[int, tuple[np.ndarray, int]] = {}  # side -> (view, drawings it shows)
        self._asked: set[int] = set()  # sides a view was asked at, of this page
        self._kept: set[int] = set(self._keep)  # those of the last page, and the sides to keep
        self._last_asked = 0  # of this page

    @property
    def layout(self) -> PageLayout | None:
        """The layout drawn last."""
        return self._layout

    def draw(self, layout: PageLayout) -> Image.Image:
        """``draw_layout(layout)``, stamping only the lines that the last drawing lacks."""
        if layout is not self._layout:
            self._draw(layout)
        return Image.fromarray(self._pixels)

    def _draw(self, layout: PageLayout) -> None:
        first = _shared_lines(self._layout, layout)
        if first is None:
            # A new page: its views start from a blank page's, which its first lines change less
            # than they change the last page's.
            cover, first = np.zeros((layout.side, layout.side), dtype=np.uint8), 0
            pixels = np.full(cover.shape, BACKGROUND, dtype=np.uint8)
            self._changes, self._views = [], {}
            self._kept, self._asked, self._last_asked = self._asked | self._keep, set(), 0
        else:  # copies: the arrays given out (images, views) are never written again
            cover, pixels = self._cover.copy(), self._pixels.copy()
        rows = _union(stamp_lines(cover, layout, first),
                      *((p.band[1], p.band[3]) for p in layout.placed[first:] if p.band is not None))
        if rows is not None:
            pixels[rows[0]:rows[1]] = ink(layout, cover, *rows)
        self._layout, self._cover, self._pixels = layout, cover, pixels
        self._changes.append(rows)
        behind = False  # a view made ahead from further back than the last drawing: one per drawing
        for side in sorted(self._kept | self._asked):
            if not self._last_asked <= side < layout.side:
                continue
            current = side == self._last_asked or self._views.get(side, (None, -1))[1] == len(self._changes) - 1
            if not current:
                if behind:
                    continue
                behind = True
            self._catch_up(side)

    def view(self, side: int) -> Image.Image:
        """``downsample(self.draw(...), side)`` of the last drawing, resampling only the rows its
        changes since this side's last view reach."""
        if self._pixels is None:
            raise ValueError("nothing drawn yet")
        if side >= self._pixels.shape[0]:  # the page itself, or (never sent: no upscales) resized up
            image = Image.fromarray(self._pixels)
            return image if side == self._pixels.shape[0] else downsample(image, side)
        self._asked.add(side)
        self._last_asked = side
        return Image.fromarray(self._catch_up(side))

    def _catch_up(self, side: int) -> np.ndarray:
        page_side = self._pixels.shape[0]
        if side >= page_side:
            return self._pixels
        view, seen = self._views.get(side) or (_blank_view(page_side, side), 0)
        if seen < len(self._changes):
            view = downsample_changed(self._pixels, side, view, _union(*self._changes[seen:]))
            self._views[side] = (view, len(self._changes))
        return view


def _union(*rows: tuple[int, int] | None) -> tuple[int, int] | None:
    """The row span [start, stop) that covers every given span (None: no rows)."""
    spans = [r for r in rows if r is not None and r[0] < r[1]]
    return (min(r[0] for r in spans), max(r[1] for r in spans)) if spans else None


def _shared_lines(old: PageLayout | None, new: PageLayout) -> int | None:
    """How many lines ``new`` starts with that ``old`` holds, when ``new`` only adds lines to it."""
    if old is None or (old.side, old.font_px, old.margin_px, old.header_band_grey) != (
            new.side, new.font_px, new.margin_px, new.header_band_grey):
        return None
    n = len(old.placed)
    return n if new.placed[:n] == old.placed else None


_BLANK_VIEWS: dict[tuple[int, int], np.ndarray] = {}


def _blank_view(page_side: int, side: int) -> np.ndarray:
    """A blank page at ``side``: LANCZOS's fixed-point weights need not give back pure white."""
    key = (page_side, side)
    if key not in _BLANK_VIEWS:
        blank = Image.new("L", (page_side, page_side), BACKGROUND)
        view = np.asarray(downsample(blank, side))
        view.flags.writeable = False
        _BLANK_VIEWS[key] = view
    return _BLANK_VIEWS[key]


def downsample_changed(pixels: np.ndarray, side: int, previous: np.ndarray,
                       rows: tuple[int, int] | None) -> np.ndarray:
    """``downsample`` of the square page ``pixels`` to ``side``, given ``previous``: the view at
    ``side`` of a page that differs from ``pixels`` only in input ``rows`` [start, stop)."""
    reached = None if rows is None else weights(pixels.shape[0], side).rows_reading(*rows)
    if reached is None:
        return previous
    first, stop = reached
    if stop - first > side * 3 // 4:  # most of the page: Pillow's own pass over it is quicker
        return np.asarray(downsample(Image.fromarray(pixels), side))
    out = previous.copy()
    out[first:stop] = downsample_rows(pixels, side, first, stop)
    return out
