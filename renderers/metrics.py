"""Glyph advances cached per (font, size, char), so a line is measured by summing, never re-measured.

Pillow's BASIC layout positions glyph n at the sum of the hinted advances before it plus the
legacy 'kern' adjustment of each adjacent pair in the same draw call. Metrics reproduces exactly
that: ``advance(ch)`` plus ``kern(prev, ch)`` when ``prev`` is drawn in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from . import fonts
from .text import needs_placeholder, placeholder

# Probe for the ink extent of a line (caps, descenders, brackets, CJK). Accented capitals may
# reach a pixel or two above it; line recognisers pad their crops anyway.
_INK_PROBE = "Hgjpqy|()[]{}国（）「」"


@dataclass(frozen=True)
class Glyph:
    font: str  # font key drawing it
    advance: float
    drawn: str  # the character itself, or its placeholder
    is_placeholder: bool


class Metrics:
    """All measurements the layout needs at one font size."""

    def __init__(self, font_px: int):
        self.font_px = font_px
        self.tables: dict[str, dict[str, Glyph]] = {kind: {} for kind in fonts.CHAINS}
        self._kern: dict[str, dict[str, float]] = {}
        self.kern_pairs = {key: fonts.kern_pairs(key) for key in fonts.FONTS}
        # kern_left[key]: characters that start some kerned pair, a cheap first test.
        self.kern_left = {key: frozenset(p[0] for p in pairs) for key, pairs in self.kern_pairs.items()}
        self.coverage = {key: fonts.coverage(key) for key in fonts.FONTS}
        self.tab_stop_unit = fonts.pil_font("mono", font_px).getlength(" ")
        asc = desc = 0
        for key in fonts.FONTS:
            font = fonts.pil_font(key, font_px)
            probe = "".join(c for c in _INK_PROBE if ord(c) in self.coverage[key])
            _, top, _, bottom = font.getbbox(probe, anchor="ls")
            asc, desc = max(asc, -top), max(desc, bottom)
        self.ink_ascent = asc  # baseline sits this far below a line's top
        self.strip_px = asc + desc  # height of every line box

    def glyph(self, kind: str, ch: str) -> Glyph:
        table = self.tables[kind]
        g = table.get(ch)
        if g is None:
            g = table[ch] = self._resolve(kind, ch)
        return g

    def _resolve(self, kind: str, ch: str) -> Glyph:
        chain = fonts.CHAINS[kind]
        if not needs_placeholder(ch):
            cp = ord(ch)
            for key in chain:
                if cp in self.coverage[key]:
                    return Glyph(key, fonts.pil_font(key, self.font_px).getlength(ch), ch, False)
        text = placeholder(ch)
        return Glyph(chain[0], fonts.pil_font(chain[0], self.font_px).getlength(text), text, True)

    def kern(self, font: str, pair: str) -> float:
        """Width change of ``pair`` drawn together versus its two advances (0 for most pairs)."""
        if pair not in self.kern_pairs[font]:
            return 0.0
        cache = self._kern.setdefault(font, {})
        k = cache.get(pair)
        if k is None:
            f = fonts.pil_font(font, self.font_px)
            k = cache[pair] = f.getlength(pair) - f.getlength(pair[0]) - f.getlength(pair[1])
        return k

    def tab_advance(self, x: float, tab_width: int) -> float:
        stop = self.tab_stop_unit * tab_width
        return (int(x // stop) + 1) * stop - x


@lru_cache(maxsize=16)
def metrics_for(font_px: int) -> Metrics:
    return Metrics(font_px)
