"""A page drawn as its layout grows: the open page, redrawn on every turn that joins it.

Drawing a page from scratch, resampling it to the size a reader is sent and encoding it took
~60 ms a turn, nearly all of it spent on lines and rows that had not changed. A Canvas keeps the
last drawing and its views and redoes only what the new lines reach. Every image it gives is
byte-identical to ``draw_layout(layout)`` and ``downsample(image, side)`` of the same layout
(tests/test_canvas.py), so a page looks the same whether it was drawn in one go or turn by turn.

Two facts make that exact rather than close:

- a page's coverage is the max over its glyph masks, which does not depend on the order glyphs
  are stamped in: a layout that extends the last one by more lines only needs those stamped;
- LANCZOS output row j reads input rows within ``3 · scale`` of ``(j + 0.5) · scale``, with weights
  that depend only on that geometry. Where the scale is a binary fraction (1280 px to 1024, 640 or
  512) those centres are exact in floating point, so resampling a band of rows cut at a multiple
  of the scale gives the full image's rows bit for bit away from the cut. Other scales (1280 to
  768) are resampled whole.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from PIL import Image

from .draw import BACKGROUND, ink, stamp_lines
from .page import downsample
from .schema import PageLayout

_LANCZOS_SUPPORT = 3.0  # Pillow's lanczos filter support, in output pixels


class Canvas:
    """The last page drawn, its coverage and the views made of it, for one open page."""

    def __init__(self) -> None:
        self._layout: PageLayout | None = None
        self._cover: np.ndarray | None = None
        self._pixels: np.ndarray | None = None
        self._views: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # side -> (view, pixels it was made from)

    @property
    def layout(self) -> PageLayout | None:
        """The layout drawn last."""
        return self._layout

    def draw(self, layout: PageLayout) -> Image.Image:
        """``draw_layout(layout)``, stamping only the lines that the last drawing lacks."""
        if layout is self._layout:
            return Image.fromarray(self._pixels)
        first = _shared_lines(self._layout, layout)
        if first is None:
            # A new page: its views are made afresh from a blank page, which its few first lines
            # change less than they change the last page.
            cover, first = np.zeros((layout.side, layout.side), dtype=np.uint8), 0
            self._views = {}
        else:
            cover = self._cover.copy()
        stamp_lines(cover, layout, first)
        self._layout, self._cover, self._pixels = layout, cover, ink(layout, cover)
        return Image.fromarray(self._pixels)

    def view(self, side: int) -> Image.Image:
        """``downsample(self.draw(...), side)`` of the last drawing, resampling only the rows its
        changes since this side's last view reach."""
        if self._pixels is None:
            raise ValueError("nothing drawn yet")
        pixels = self._pixels
        if pixels.shape[0] == side:
            return Image.fromarray(pixels)
        last = self._views.get(side)
        if last is None or last[1].shape != pixels.shape:
            last = (_blank_view(pixels.shape[0], side), np.full(pixels.shape, BACKGROUND, dtype=np.uint8))
        if last[1] is pixels:
            return Image.fromarray(last[0])
        view = downsample_changed(pixels, side, last[0], _changed_rows(last[1], pixels))
        self._views[side] = (view, pixels)
        return Image.fromarray(view)


def _shared_lines(old: PageLayout | None, new: PageLayout) -> int | None:
    """How many lines ``new`` starts with that ``old`` holds, when ``new`` only adds lines to it."""
    if old is None or (old.side, old.font_px, old.margin_px, old.header_band_grey) != (
            new.side, new.font_px, new.margin_px, new.header_band_grey):
        return None
    n = len(old.placed)
    return n if new.placed[:n] == old.placed else None


def _changed_rows(old: np.ndarray, new: np.ndarray) -> tuple[int, int] | None:
    rows = np.flatnonzero((old != new).any(axis=1))
    return (int(rows[0]), int(rows[-1]) + 1) if rows.size else None


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
    if rows is None:
        return previous
    height = pixels.shape[0]
    scale = Fraction(height, side)
    if scale <= 1 or scale.denominator & (scale.denominator - 1):
        return np.asarray(downsample(Image.fromarray(pixels), side))  # not exact by bands: whole
    s = float(scale)
    support = _LANCZOS_SUPPORT * s
    # Output rows whose input window [centre - support, centre + support] meets the changed rows.
    first = max(0, math.floor((rows[0] - support - 0.5) / s - 0.5) - 1)
    stop = min(side, math.ceil((rows[1] + support - 0.5) / s - 0.5) + 2)
    # The band resampled: a margin past them where its own edge clips the window, its ends on
    # multiples of the scale's denominator so that they fall on whole input rows.
    margin = math.ceil(support / s) + 2
    step = scale.denominator
    lo = max(0, (first - margin) // step * step)
    hi = min(side, -(-(stop + margin) // step) * step)
    band = Image.fromarray(pixels[lo * scale.numerator // step: hi * scale.numerator // step])
    band_view = np.asarray(band.resize((side, hi - lo), Image.Resampling.LANCZOS))
    out = previous.copy()
    out[first:stop] = band_view[first - lo: stop - lo]
    return out
