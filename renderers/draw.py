"""Rasterise a PageLayout and encode it as PNG; the only module that touches pixels of a page.

Each (font, size, char) glyph is rasterised once by FreeType (through Pillow, BASIC layout) into a
coverage mask and cached; a page is the max of its glyph masks placed at the layout's pen positions,
then inked onto the background. This is 3–8× faster than one ImageDraw.text call per run on dense
CJK pages and gives the same pen positions as the layout's measurements by construction.
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from . import fonts
from .metrics import metrics_for
from .schema import PageLayout

BACKGROUND = 255
_PAD = 2  # FreeType's antialiasing may reach a pixel past getbbox; keep a margin when caching


@lru_cache(maxsize=65536)
def _glyph(font_key: str, size: int, ch: str) -> tuple[np.ndarray | None, int, int, float]:
    """(coverage mask, dx, dy from the pen position on the baseline, advance) of one character."""
    font = fonts.pil_font(font_key, size)
    advance = font.getlength(ch)
    left, top, right, bottom = font.getbbox(ch, anchor="ls")
    if right <= left or bottom <= top:
        return None, 0, 0, advance
    w, h = right - left + 2 * _PAD, bottom - top + 2 * _PAD
    image = Image.new("L", (w, h), 0)
    ImageDraw.Draw(image).text((_PAD - left, _PAD - top), ch, font=font, fill=255, anchor="ls")
    mask = np.asarray(image)
    if not mask.any():
        return None, 0, 0, advance
    return mask, left - _PAD, top - _PAD, advance


def _stamp(cover: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
    side_h, side_w = cover.shape
    h, w = mask.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, side_w), min(y + h, side_h)
    if x0 >= x1 or y0 >= y1:
        return  # wholly off the page (e.g. a stack of combining marks above the first line)
    dst = cover[y0:y1, x0:x1]
    np.maximum(dst, mask[y0 - y:y1 - y, x0 - x:x1 - x], out=dst)


def coverage(layout: PageLayout) -> np.ndarray:
    """Ink coverage (0–255) of every pixel: the union of all glyphs at their pen positions."""
    cover = np.zeros((layout.side, layout.side), dtype=np.uint8)
    stamp_lines(cover, layout, 0)
    return cover


def stamp_lines(cover: np.ndarray, layout: PageLayout, first: int) -> tuple[int, int] | None:
    """Add the glyphs of ``layout.placed[first:]`` to ``cover``; the rows [top, bottom) they reach,
    or None when they reach none. Coverage is a max over glyphs, so the lines a drawing already
    holds never need stamping again (renderers.canvas)."""
    side = layout.side
    m = metrics_for(layout.font_px)
    size, x0 = layout.font_px, layout.margin_px
    maximum = np.maximum
    top, bottom = side, 0
    for placed in layout.placed[first:]:
        baseline = placed.baseline
        for run in placed.runs:
            font = run.font
            kern_left = m.kern_left[font]
            pen = x0 + run.x
            prev = ""
            for ch in run.text:
                mask, dx, dy, advance = _glyph(font, size, ch)
                if prev in kern_left:
                    pen += m.kern(font, prev + ch)
                if mask is not None:
                    x, y = round(pen) + dx, baseline + dy
                    h, w = mask.shape
                    top, bottom = min(top, y), max(bottom, y + h)
                    if x >= 0 and y >= 0 and x + w <= side and y + h <= side:
                        dst = cover[y:y + h, x:x + w]
                        maximum(dst, mask, out=dst)
                    else:
                        _stamp(cover, mask, x, y)
                pen += advance
                prev = ch
    top, bottom = max(top, 0), min(bottom, side)
    return (top, bottom) if top < bottom else None


def draw_layout(layout: PageLayout) -> Image.Image:
    """Greyscale page: black text on white, header bands in ``layout.header_band_grey``."""
    return Image.fromarray(ink(layout, coverage(layout)))


def ink(layout: PageLayout, cover: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
    """The page's 8-bit pixels from its coverage, rows [start, stop) (all by default): black ink
    on white, bands in their grey."""
    stop = cover.shape[0] if stop is None else stop
    page = BACKGROUND - cover[start:stop]  # black ink on white: 255·(1 − a/255)
    for placed in layout.placed:
        if placed.band is not None:
            bx0, by0, bx1, by1 = placed.band
            y0, y1 = max(by0, start), min(by1, stop)
            if y0 < y1:
                a = cover[y0:y1, bx0:bx1].astype(np.uint16)
                page[y0 - start:y1 - start, bx0:bx1] = (
                    (layout.header_band_grey * (255 - a) + 127) // 255).astype(np.uint8)
    return page


def encode_png(image: Image.Image) -> bytes:
    """8-bit greyscale PNG with fixed settings and no metadata chunks, so equal pixels give equal bytes.

    Pages are encoded once when sealed and again at every tier move, which made Pillow's encoder
    (adaptive per-row filters, zlib level 6) the largest cost of ingest. Text pages are mostly flat
    runs, so the Sub filter on every row with zlib level 1 is 2-4x faster and only ~5-40 % larger.
    """
    if image.mode != "L":
        raise ValueError(f"pages are 8-bit greyscale ('L'); got mode {image.mode!r}")
    pixels = np.asarray(image, dtype=np.uint8)
    height, width = pixels.shape
    rows = np.empty((height, width + 1), dtype=np.uint8)
    rows[:, 0] = 1  # filter type Sub: each byte minus its left neighbour, mod 256
    rows[:, 1] = pixels[:, 0]
    np.subtract(pixels[:, 1:], pixels[:, :-1], out=rows[:, 2:])
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8 bit, greyscale, deflate, no interlace
    return b"".join((_PNG_SIGNATURE, _chunk(b"IHDR", header),
                     _chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)), _chunk(b"IEND", b"")))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def decode_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
