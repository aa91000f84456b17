"""Pages out of the renderer: page image encodings (grey PNG at 8/4/2/1 bit, lossless WebP) for the
store and for requests, and `optmem render FILE --out DIR` (one PNG per tier plus the layout as JSON)."""

from __future__ import annotations

import functools
import io
import json
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from .draw import _PNG_SIGNATURE, _chunk, encode_png
from .page import TIER_SIDES, Page
from .tiers import VIEW_TIERS


def page_record(page: Page, index: int, files: dict[str, dict]) -> dict:
    return {
        "index": index,
        "renderer_version": page.renderer_version,
        "content_hash": page.content_hash,
        "side": page.side,
        "font_px": page.font_px,
        "fonts": [{"name": n, "sha256": h} for n, h in page.fonts],
        "start": list(page.start),
        "end": list(page.end),
        "segments": [
            {"turn_index": s.turn_index, "start": s.start, "end": s.end, "header": s.header} for s in page.segments
        ],
        "lines": [
            {"box": list(ln.box), "text": ln.text, "drawn": ln.drawn, "span": list(ln.span), "kind": ln.kind}
            for ln in page.lines
        ],
        "tiers": files,
        "source_text": page.source_text,
    }


def export_pages(pages: Iterable[Page], out_dir: str | Path) -> list[Path]:
    """Write page-0001-large.png … page-0001-tiny.png and page-0001.json per page; returns the paths
    in writing order. Boxes in the JSON are at the page's own side (scale by tier side / side)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for index, page in enumerate(pages, start=1):
        files: dict[str, dict] = {}
        for tier, side in TIER_SIDES.items():
            view = page.at(tier)
            path = out / f"page-{index:04d}-{tier}.png"
            path.write_bytes(view.png)
            written.append(path)
            files[tier] = {"file": path.name, "side": side, "content_hash": view.content_hash}
        meta = out / f"page-{index:04d}.json"
        meta.write_text(json.dumps(page_record(page, index, files), ensure_ascii=False, indent=1), encoding="utf-8")
        written.append(meta)
    return written


# --- page image encodings ---------------------------------------------------------------------
#
# Pages are black text on white: after a tier downsample (LANCZOS) nearly every edge pixel takes
# its own grey level, and deflate sees noise (a 1024 px page is larger than the 1280 one). A reader
# needs far fewer than 256 levels to see the glyphs, so the smaller encodings first quantise to
# N evenly spaced greys (nearest level, by a lookup table), then write them losslessly: grey PNG at
# the smallest bit depth that holds N levels, or lossless WebP. PNG and WebP of one N decode to the
# same pixels.

GREY_LEVELS = (256, 16, 8, 4, 2)


@dataclass(frozen=True)
class PageEncoding:
    """How one page image is stored and sent: a container and the number of grey levels kept."""

    name: str
    container: Literal["png", "webp"]
    levels: int

    @property
    def media_type(self) -> str:
        return f"image/{self.container}"

    @property
    def bits(self) -> int:
        """Grey PNG bit depth that holds ``levels``."""
        return _storage_bits(self.levels)


# ``png`` is today's 8-bit writer; ``-g<N>`` keeps N grey levels.
PAGE_ENCODINGS: dict[str, PageEncoding] = {
    e.name: e for e in (
        PageEncoding("png", "png", 256), PageEncoding("webp", "webp", 256),
        *(PageEncoding(f"{c}-g{n}", c, n) for c in ("png", "webp") for n in GREY_LEVELS[1:]),
    )
}


# What to send at each tier: the fewest grey levels whose PP-OCR read-back stays within 0.1 pt CER of
# the 8-bit page, as lossless WebP, which measures 5-30 % smaller than the PNG of the same pixels on
# every tier (benchmarks/results/image_bytes.md). 4 levels lose 0.5-6 pt at 512 px and 0.8 pt
# (Chinese) at 640, 8 levels 0.4 pt (Chinese) at 512; 2 levels lose nothing at 1024 and 1280.
TIER_ENCODINGS: dict[str, str] = {"large": "webp-g2", "base": "webp-g2", "small": "webp-g8", "tiny": "webp-g16"}


def encoding_for_side(side: int, container: Literal["png", "webp"] | None = None) -> str:
    """The TIER_ENCODINGS format for an image of ``side`` px: that of the largest tier no larger
    (a reader's rung need not be one of optmem's sides: OpenAI's 768, Claude's 1092), in
    ``container`` when given (the same grey levels, so the same pixels)."""
    fitting = [t for t in VIEW_TIERS if t.side <= side]
    tier = max(fitting, key=lambda t: t.side) if fitting else VIEW_TIERS[-1]
    name = TIER_ENCODINGS[tier.value]
    if container is None:
        return name
    return page_encoding(f"{container}-g{PAGE_ENCODINGS[name].levels}").name


def sent_view(image: Image.Image, side: int, crop: int = 0) -> Image.Image:
    """The 8-bit pixels of a page image sent at ``side`` px: ``image`` resized to ``side``, or
    (``crop`` > 0) its view at ``side + 2 * crop`` px with ``crop`` px of blank margin cut from every
    edge, so the reader sees the view's own pixels."""
    from .page import downsample

    if crop < 0:
        raise ValueError(f"crop must be >= 0, got {crop}")
    view = side + 2 * crop
    if image.width != view:
        image = downsample(image, view)
    return image.crop((crop, crop, view - crop, view - crop)) if crop else image


def reader_image(image: Image.Image, side: int, *, crop: int = 0, container: Literal["png", "webp"] | None = None,
                 fast: bool = False) -> bytes:
    """The bytes a reader is sent for a page image (sent_view), kept at the grey levels measured
    for the size its glyphs are drawn at (encoding_for_side: the uncropped view's), in ``container``
    (default TIER_ENCODINGS'); ``fast``: see encode_page_image."""
    return encode_page_image(sent_view(image, side, crop), encoding_for_side(side + 2 * crop, container), fast=fast)


def page_encoding(fmt: str) -> PageEncoding:
    try:
        return PAGE_ENCODINGS[fmt]
    except KeyError:
        raise ValueError(f"unknown page image format {fmt!r}; expected one of {sorted(PAGE_ENCODINGS)}") from None


def quantize_grey(image: Image.Image, levels: int) -> np.ndarray:
    """Grey PNG samples (0 … 2**bits − 1 at the encoding's bit depth) of the nearest of ``levels``
    evenly spaced greys; ties go to the darker level, so equal pixels always give equal samples."""
    samples, _ = _level_tables(levels)
    return np.asarray(_checked_grey(image).point(samples.tolist()))  # Pillow's table lookup: 3x numpy's indexing


def quantized_image(image: Image.Image, levels: int) -> Image.Image:
    """What a reader decodes from ``image`` kept at ``levels`` greys, as an 8-bit image."""
    _, values = _level_tables(levels)
    return _checked_grey(image).point(values.tolist())


def _storage_bits(levels: int) -> int:
    if levels not in GREY_LEVELS:
        raise ValueError(f"levels must be one of {GREY_LEVELS}, got {levels}")
    return next(b for b in (1, 2, 4, 8) if 1 << b >= levels)


@functools.cache
def _level_tables(levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per 8-bit input value: its PNG sample and the 8-bit grey that sample decodes to."""
    top = (1 << _storage_bits(levels)) - 1
    level_samples = np.array([(i * top + (levels - 1) // 2) // (levels - 1) for i in range(levels)], dtype=np.int32)
    level_values = level_samples * (255 // top)  # grey PNG decodes sample s as s·255/top
    nearest = np.abs(np.arange(256)[:, None] - level_values[None, :]).argmin(axis=1)
    samples, values = level_samples[nearest].astype(np.uint8), level_values[nearest].astype(np.uint8)
    samples.flags.writeable = values.flags.writeable = False
    return samples, values


def encode_page_image(image: Image.Image, fmt: str = "png", *, fast: bool = False) -> bytes:
    """A greyscale page image as ``fmt`` (see PAGE_ENCODINGS), byte-identical for equal pixels.

    ``png`` is today's 8-bit writer (encode_png). ``png-g<N>`` writes grey PNG at the bit depth of
    N levels: no row filter (the filters predict bytes, and a packed byte holds several pixels) and
    zlib level 6. ``webp*`` are lossless WebP of the same greys (Pillow's libwebp, method 4).
    ``fast``: the least compression effort, for an image made for one request only (the open
    page, redrawn as turns join it) or compressed again later: grey PNG at the encoding's bit depth
    with zlib level 1, whatever the container (every reader's API takes PNG). The same pixels in
    4-11 ms against WebP's 60-90 ms, and 25-90 % more bytes (chat pages at 1280-512 px; WebP's
    fastest method was both slower and larger than this).
    """
    enc = page_encoding(fmt)
    if enc.container == "webp" and not fast:
        buf = io.BytesIO()
        quantized_image(image, enc.levels).save(buf, "WEBP", lossless=True, quality=_WEBP_EFFORT, method=_WEBP_METHOD,
                                                exact=True)
        return buf.getvalue()
    if enc.levels == 256:
        return encode_png(image)
    return _grey_png(quantize_grey(image, enc.levels), enc.bits, level=1 if fast else 6)


def tier_image(page: Page, tier: str, fmt: str | None = None) -> tuple[bytes, str]:
    """(bytes, media type) of ``page`` at ``tier`` in ``fmt`` (default TIER_ENCODINGS[tier]).

    Always made from the 8-bit page: a tier downsampled from an already quantised image and
    quantised again has several times the pixel error (benchmarks/results/image_bytes.md, last
    table)."""
    if tier not in TIER_ENCODINGS:
        raise ValueError(f"unknown tier {tier!r}; expected one of {sorted(TIER_ENCODINGS)}")
    enc = page_encoding(fmt or TIER_ENCODINGS[tier])
    return encode_page_image(page.at(tier).image, enc.name), enc.media_type


def decode_page_image(data: bytes) -> Image.Image:
    """Any PAGE_ENCODINGS bytes back to an 8-bit greyscale ('L') image."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"page image data must be bytes, got {type(data).__name__}")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, SyntaxError) as exc:  # Pillow's UnidentifiedImageError is an OSError
        raise ValueError(f"not a decodable page image ({len(data)} bytes): {exc}") from exc
    if image.format not in ("PNG", "WEBP"):
        raise ValueError(f"page images are PNG or WebP, got {image.format}")
    return image if image.mode == "L" else image.convert("L")


_WEBP_METHOD = 4  # libwebp's default speed/size trade-off; 6 is 10-100x slower for < 1 % fewer bytes
# Lossless "quality" is effort, not fidelity. Above libwebp's default 75 its encoder searches
# further back for matches: on pages of repeated text 10-20 % fewer bytes (57 -> 47 KB, a 1280 px
# Chinese page at 2 levels) for about the same time at method 4.
_WEBP_EFFORT = 90


def _checked_grey(image: Image.Image) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(image).__name__}")
    if image.mode != "L":
        raise ValueError(f"pages are 8-bit greyscale ('L'); got mode {image.mode!r}")
    return image


def _grey_png(samples: np.ndarray, bits: int, level: int = 6) -> bytes:
    height, width = samples.shape
    per_byte = 8 // bits
    padded = np.zeros((height, -(-width // per_byte) * per_byte), dtype=np.uint8)
    padded[:, :width] = samples
    groups = padded.reshape(height, -1, per_byte)
    packed = np.zeros(groups.shape[:2], dtype=np.uint8)
    for i in range(per_byte):  # first pixel in the most significant bits, as PNG packs them
        packed |= groups[:, :, i] << (8 - bits * (i + 1))
    rows = np.empty((height, packed.shape[1] + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type None
    rows[:, 1:] = packed
    header = struct.pack(">IIBBBBB", width, height, bits, 0, 0, 0, 0)  # greyscale, deflate, no interlace
    return b"".join((_PNG_SIGNATURE, _chunk(b"IHDR", header),
                     _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)), _chunk(b"IEND", b"")))
