"""Page: a drawn PageLayout with its PNG, hash and font pins; tier views made by one downsampler."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from PIL import Image

from .config import RenderConfig
from .draw import decode_png, draw_layout, encode_png
from .fonts import font_record
from .schema import Line, PageLayout, Segment
from .tiers import GUNDAM_GLOBAL_SIDE, GUNDAM_TILE_SIDE, VIEW_TIERS

RENDERER_VERSION = "optmem-renderers/1.0"
TIER_SIDES: dict[str, int] = {t.value: t.side for t in VIEW_TIERS}
GUNDAM_MIN_TILES, GUNDAM_MAX_TILES = 2, 9  # DeepSeek-OCR's HF `infer` defaults


def downsample(image: Image.Image, side: int) -> Image.Image:
    """The one resampler for tier images: LANCZOS to side × side (deterministic for equal input)."""
    if side <= 0:
        raise ValueError(f"side must be positive, got {side}")
    if image.size == (side, side):
        return image.copy()
    return image.resize((side, side), Image.Resampling.LANCZOS)


def blank_edge(margin_px: int, page_px: int, side: int) -> int:
    """Px of blank border on every edge of a page's view at ``side`` px: its margin scaled, less 3 px
    (a glyph may overhang the margin by a pixel, and LANCZOS spreads ink 3 px of the smaller image;
    measured on English, Chinese and chat pages at every tier)."""
    return max(0, margin_px * side // page_px - 3)


def scale_lines(lines: tuple[Line, ...], factor: float) -> tuple[Line, ...]:
    """Line boxes scaled by ``factor``, rounded outwards so the ink strip stays inside the box."""
    out = []
    for ln in lines:
        x0, y0, x1, y1 = ln.box
        box = (math.floor(x0 * factor), math.floor(y0 * factor), math.ceil(x1 * factor), math.ceil(y1 * factor))
        out.append(Line(box, ln.text, ln.drawn, ln.span, ln.kind))
    return tuple(out)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def gundam_grid(width: int, height: int, min_num: int = GUNDAM_MIN_TILES, max_num: int = GUNDAM_MAX_TILES,
                tile: int = GUNDAM_TILE_SIDE) -> tuple[int, int]:
    """(n_wide, n_high) of DeepSeek-OCR's dynamic_preprocess; (0, 0) when the image is small
    enough for the global view alone. A square page above 640 px gives (2, 2)."""
    if width <= tile and height <= tile:
        return 0, 0
    aspect = width / height
    ratios = sorted(
        {(i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
         if min_num <= i * j <= max_num},
        key=lambda r: r[0] * r[1],
    )
    best, best_diff, area = (1, 1), float("inf"), width * height
    for r in ratios:
        diff = abs(aspect - r[0] / r[1])
        if diff < best_diff:
            best, best_diff = r, diff
        elif diff == best_diff and area > 0.5 * tile * tile * r[0] * r[1]:
            best = r
    return best


@dataclass(frozen=True)
class PageView:
    """A page at one tier: image, layout scaled to it, and its own PNG bytes and hash."""

    tier: str
    side: int
    image: Image.Image
    lines: tuple[Line, ...]
    png: bytes
    content_hash: str


@dataclass(frozen=True)
class GundamView:
    """Gundam input of one page: the 1024 global view plus 640 px tiles in row-major order."""

    global_image: Image.Image
    global_lines: tuple[Line, ...]
    tiles: tuple[Image.Image, ...]
    grid: tuple[int, int]  # (n_wide, n_high)

    @property
    def n_wide(self) -> int:
        return self.grid[0]

    @property
    def n_high(self) -> int:
        return self.grid[1]


@dataclass(frozen=True)
class Page:
    """A rendered page. Only the PNG is kept; ``image`` decodes it, so a long document's pages
    cost their compressed size in memory, not 1.6 MB of pixels each."""

    layout: PageLayout
    png: bytes
    content_hash: str
    fonts: tuple[tuple[str, str], ...]  # (font name, sha256) of every font drawn on the page
    renderer_version: str = RENDERER_VERSION

    @property
    def image(self) -> Image.Image:
        return decode_png(self.png)

    @property
    def side(self) -> int:
        return self.layout.side

    @property
    def lines(self) -> tuple[Line, ...]:
        return self.layout.lines

    @property
    def source_text(self) -> str:
        return self.layout.source_text

    @property
    def font_px(self) -> int:
        return self.layout.font_px

    @property
    def segments(self) -> tuple[Segment, ...]:
        return self.layout.segments

    @property
    def start(self) -> tuple[int, int]:
        return self.layout.start

    @property
    def end(self) -> tuple[int, int]:
        return self.layout.end

    def at(self, tier: str) -> PageView:
        """The page at ``tier`` (large 1280, base 1024, small 640, tiny 512); Gundam is ``gundam()``."""
        if tier not in TIER_SIDES:
            raise ValueError(f"unknown tier {tier!r}; expected one of {sorted(TIER_SIDES)} (Gundam: page.gundam())")
        side = TIER_SIDES[tier]
        if side == self.side:
            return PageView(tier, side, self.image, self.lines, self.png, self.content_hash)
        image = downsample(self.image, side)
        png = encode_png(image)
        return PageView(tier, side, image, scale_lines(self.lines, side / self.side), png, sha256_hex(png))

    def gundam(self) -> GundamView:
        image = self.image
        global_image = downsample(image, GUNDAM_GLOBAL_SIDE)  # ImageOps.pad of a square page = resize
        global_lines = scale_lines(self.lines, GUNDAM_GLOBAL_SIDE / self.side)
        nw, nh = gundam_grid(self.side, self.side)
        tiles: list[Image.Image] = []
        if nw:
            # dynamic_preprocess squashes to (640·nw, 640·nh); pages are square so nw == nh.
            full = image if self.side == GUNDAM_TILE_SIDE * nw else downsample(image, GUNDAM_TILE_SIDE * nw)
            for i in range(nw * nh):
                x, y = (i % nw) * GUNDAM_TILE_SIDE, (i // nw) * GUNDAM_TILE_SIDE
                tiles.append(full.crop((x, y, x + GUNDAM_TILE_SIDE, y + GUNDAM_TILE_SIDE)))
        return GundamView(global_image, global_lines, tuple(tiles), (nw, nh))


def make_page(layout: PageLayout) -> Page:
    """Draw ``layout`` and wrap it with its PNG, hash and font pins."""
    png = encode_png(draw_layout(layout))
    return Page(layout, png, sha256_hex(png), tuple(font_record(k) for k in layout.font_keys))


def draw_page(layout: PageLayout, config: RenderConfig | None = None) -> Page:
    """The drawing half of render_pages, for callers that keep layouts and draw only on sealing.
    ``config`` is optional: the layout already carries every drawing parameter; when given it must
    be the geometry the layout was made with."""
    if config is not None and config.page_px != layout.side:
        raise ValueError(f"config.page_px={config.page_px} does not match the layout's side {layout.side}")
    return make_page(layout)
