"""Text → square page images for optical memory (DeepSeek-OCR), deterministic to the byte.

    from renderers import render_pages, layout_pages, RenderConfig
    pages = render_pages([("user", "hi"), ("assistant", "hello")])
    pages[0].at("tiny").image      # 512 px view, layout scaled with it
"""

from .config import RenderConfig
from .draw import draw_layout, encode_png
from .export import (
    PAGE_ENCODINGS,
    TIER_ENCODINGS,
    PageEncoding,
    decode_page_image,
    encode_page_image,
    encoding_for_side,
    export_pages,
    page_encoding,
    quantize_grey,
    quantized_image,
    reader_image,
    sent_view,
    tier_image,
)
from .header import find_headers, format_header, format_timestamp, normalize_separators
from .fonts import FONTS, FontError, FontMismatchError, FontNotFoundError
from .layout import choose_font_px, layout_pages, normalize_turns
from .page import (
    RENDERER_VERSION,
    TIER_SIDES,
    GundamView,
    Page,
    PageView,
    blank_edge,
    downsample,
    draw_page,
    gundam_grid,
    make_page,
    scale_lines,
)
from .render import iter_pages, render_pages
from .schema import LayoutPos, Line, PageLayout, PlacedLine, Run, Segment, TurnInput
from .tiers import VIEW_TIERS, Tier

__all__ = [
    "FONTS", "PAGE_ENCODINGS", "RENDERER_VERSION", "TIER_ENCODINGS", "TIER_SIDES", "FontError", "FontMismatchError",
    "FontNotFoundError", "GundamView", "LayoutPos", "Line", "Page", "PageEncoding", "PageLayout", "PageView",
    "PlacedLine", "RenderConfig", "Run", "Segment", "Tier", "TurnInput", "VIEW_TIERS", "choose_font_px",
    "blank_edge", "decode_page_image", "downsample", "draw_layout", "draw_page", "encode_page_image", "encode_png", "encoding_for_side", "export_pages",
    "find_headers", "format_header", "format_timestamp", "gundam_grid", "iter_pages", "layout_pages", "make_page",
    "normalize_separators", "normalize_turns", "page_encoding", "quantize_grey", "quantized_image", "reader_image", "render_pages", "sent_view",
    "scale_lines", "tier_image",
]
