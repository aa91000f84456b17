"""renderers public API: pages, views, Gundam tiles, continuation between pages, export."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from optmem.modes import SQUARE_PAGE_GUNDAM_GRID
from renderers import (
    RENDERER_VERSION,
    TIER_SIDES,
    RenderConfig,
    TurnInput,
    downsample,
    draw_page,
    encode_png,
    export_pages,
    gundam_grid,
    layout_pages,
    render_pages,
    scale_lines,
)

CHAT = [
    ("user", "Can you check why the nightly export to s3://backups/prod fails since Tuesday?"),
    ("assistant", "The job hits a timeout after 3600 s. The table audit_log_2019 grew to 41 GB, so the "
                  "dump takes longer than the window. Splitting it per month fixes it."),
    ("user", "好的，请按月拆分，然后告诉我每个分区的大小。"),
]


def long_turns(n_words: int = 3000) -> list[tuple[str, str]]:
    words = [f"word{i % 97}" for i in range(n_words)]
    return [("user", " ".join(words)), ("assistant", "short reply")]


def test_render_pages_basic_fields():
    pages = render_pages(CHAT)
    assert len(pages) == 1
    page = pages[0]
    image = page.image
    assert image.mode == "L" and image.size == (1280, 1280) and page.side == 1280
    assert page.content_hash == hashlib.sha256(page.png).hexdigest()
    assert page.renderer_version == RENDERER_VERSION
    names = [name for name, _ in page.fonts]
    assert names == ["DejaVu Sans", "DejaVu Sans Bold", "Noto Sans CJK SC"]
    assert all(len(h) == 64 for _, h in page.fonts)
    kinds = [ln.kind for ln in page.lines]
    assert kinds.count("header") == 3
    headers = [ln.text for ln in page.lines if ln.kind == "header"]
    assert headers == ["user · #1", "assistant · #2", "user · #3"]
    assert page.start == (0, 0) and page.end == (3, 0)
    for turn_text in (t for _, t in CHAT):
        assert turn_text in page.source_text


def test_inline_header_is_visually_distinct():
    page = render_pages([("user", "plain text line")])[0]
    header, text = page.lines
    assert header.kind == "header" and text.kind == "text"
    a = np.asarray(page.image)
    grey = RenderConfig().header_band_grey
    # Same row, header first; the text line box starts right of the label, boxes do not overlap.
    assert header.box[1] == text.box[1] and header.box[2] < text.box[0]
    # Grey band behind the label (just right of its text), white behind the body text.
    assert a[header.box[1] + 2, header.box[2] + 2] == grey
    assert a[text.box[1] + 2, text.box[2] + 5] == 255
    # Bold: more ink per pixel of width than the same words in the regular body font.
    same = render_pages([("plain text line", "plain text line")], RenderConfig(header_placement="line"))[0]
    b = np.asarray(same.image)

    def ink(box):
        x0, y0, x1, y1 = box
        return (255 - b[y0:y1, x0:x1].astype(int)).sum() / (x1 - x0)

    hb, tb = same.lines
    assert hb.box[1] < tb.box[1] and ink(hb.box) > ink(tb.box)


def test_header_on_its_own_row_has_a_full_width_band():
    page = render_pages([("user", "plain text line")], RenderConfig(header_placement="line"))[0]
    header, text = page.lines
    a = np.asarray(page.image)
    assert text.box[1] > header.box[1]
    assert a[header.box[1] + 2, 1200] == RenderConfig().header_band_grey
    assert a[text.box[1] + 2, 1200] == 255


def test_long_role_gets_its_own_row():
    page = render_pages([("r" * 150, "text")])[0]
    header, text = page.lines
    assert text.box[1] > header.box[1] and header.text.startswith("rrr")


def test_input_forms_agree():
    by_pairs = render_pages([("user", "hello")])[0]
    by_input = render_pages([TurnInput("user", "hello")])[0]
    assert by_pairs.content_hash == by_input.content_hash
    doc = layout_pages("just a document")[0]
    assert [ln.kind for ln in doc.lines] == ["text"]  # a plain string has no header
    assert render_pages([]) == []


@pytest.mark.parametrize("bad", [[("user",)], [("user", 3)], [42], [(None, "x")]])
def test_bad_turn_types_raise_typed_errors(bad):
    with pytest.raises(TypeError, match=r"turns\[0\]"):
        layout_pages(bad)


def test_bad_start_offset():
    with pytest.raises(ValueError, match=r"turns\[0\]\.start"):
        layout_pages([TurnInput("user", "abc", start=4)])


def test_turn_number_and_timestamp_in_header():
    layout = layout_pages([TurnInput("assistant", "x", number=17, timestamp=0.0)])[0]
    assert layout.lines[0].text == "assistant · #17 · 1970-01-01 00:00 UTC"
    plain = layout_pages([TurnInput("assistant", "x", timestamp="2024-05-01 10:00")],
                         RenderConfig(show_timestamp=False))[0]
    assert plain.lines[0].text == "assistant · #1"


def test_render_equals_draw_of_layout():
    layouts = layout_pages(long_turns())
    pages = render_pages(long_turns())
    assert len(layouts) == len(pages) > 1
    for layout, page in zip(layouts, pages):
        assert draw_page(layout).content_hash == page.content_hash
        assert layout.lines == page.lines


def test_long_turn_continues_with_continued_header_and_full_text_spans():
    turns = long_turns()
    layouts = layout_pages(turns)
    assert len(layouts) >= 2
    first, second = layouts[0], layouts[1]
    assert first.end == second.start
    t, offset = first.end
    assert t == 0 and 0 < offset < len(turns[0][1])
    head = second.lines[0]
    assert head.kind == "header" and head.text == "user · #1 (continued)" and head.span == (0, offset, offset)
    body = second.lines[1]
    assert body.span[1] == offset
    assert body.text == turns[0][1][body.span[1]:body.span[2]]
    assert layouts[-1].end == (2, 0)


def test_continuing_from_page_end_reproduces_the_next_page():
    """The memory layer restarts layout at a sealed page's end; that must give the same page."""
    turns = long_turns(5000)
    layouts = layout_pages(turns)
    t, offset = layouts[0].end
    resumed = layout_pages([TurnInput("user", turns[0][1], number=1, start=offset),
                            TurnInput("assistant", turns[1][1], number=2)])
    assert len(resumed) == len(layouts) - 1
    for original, again in zip(layouts[1:], resumed):
        assert [(ln.box, ln.text, ln.kind, ln.span) for ln in original.lines] == \
               [(ln.box, ln.text, ln.kind, ln.span) for ln in again.lines]
        assert draw_page(original).content_hash == draw_page(again).content_hash


def test_pages_pack_consecutive_turns():
    turns = [("user" if i % 2 == 0 else "assistant", f"message number {i} " * 5) for i in range(60)]
    layouts = layout_pages(turns)
    assert len(layouts) >= 2
    seen = [s.turn_index for lay in layouts for s in lay.segments]
    assert seen == sorted(seen) and set(seen) == set(range(60))
    assert len(layouts[0].segments) > 10  # many turns share a page


@pytest.mark.parametrize("tier,side", sorted(TIER_SIDES.items()))
def test_tier_views(tier, side):
    page = render_pages(CHAT)[0]
    view = page.at(tier)
    assert view.side == side and view.image.size == (side, side) and view.image.mode == "L"
    assert view.content_hash == hashlib.sha256(view.png).hexdigest()
    assert len(view.lines) == len(page.lines)
    f = side / page.side
    for big, small in zip(page.lines, view.lines):
        assert small.text == big.text and small.span == big.span
        assert small.box[0] <= big.box[0] * f + 1e-9 and small.box[2] >= big.box[2] * f - 1e-9
        assert 0 <= small.box[0] < small.box[2] <= side and 0 <= small.box[1] < small.box[3] <= side
    assert page.at(tier).content_hash == view.content_hash  # deterministic


def test_unknown_tier_raises():
    with pytest.raises(ValueError, match="gundam"):
        render_pages("x")[0].at("gundam")


def test_downsample_is_lanczos_and_deterministic():
    page = render_pages(CHAT)[0]
    a = downsample(page.image, 512)
    b = page.image.resize((512, 512), Image.Resampling.LANCZOS)
    assert a.tobytes() == b.tobytes() == downsample(page.image, 512).tobytes()
    assert downsample(page.image, 1280).tobytes() == page.image.tobytes()


def test_scale_lines_rounds_outwards():
    page = render_pages(CHAT)[0]
    half = scale_lines(page.lines, 0.5)
    for big, small in zip(page.lines, half):
        assert small.box[0] * 2 <= big.box[0] and small.box[2] * 2 >= big.box[2]


def test_gundam_view_of_square_page():
    page = render_pages(CHAT)[0]
    g = page.gundam()
    assert g.grid == SQUARE_PAGE_GUNDAM_GRID == (2, 2) and (g.n_wide, g.n_high) == (2, 2)
    assert g.global_image.size == (1024, 1024)
    assert g.global_image.tobytes() == page.at("base").image.tobytes()
    assert [t.size for t in g.tiles] == [(640, 640)] * 4
    # Row-major: tile 1 is the top-right quarter of the 1280 page.
    assert g.tiles[1].tobytes() == page.image.crop((640, 0, 1280, 640)).tobytes()
    assert g.tiles[2].tobytes() == page.image.crop((0, 640, 640, 1280)).tobytes()


def test_gundam_grid_matches_dynamic_preprocess():
    assert gundam_grid(1280, 1280) == (2, 2)
    assert gundam_grid(640, 640) == (0, 0)
    assert gundam_grid(1280, 640) == (2, 1)
    assert gundam_grid(640, 1280) == (1, 2)
    assert gundam_grid(1920, 1280) == (3, 2)


def test_export_pages(tmp_path):
    pages = render_pages(long_turns())
    paths = export_pages(pages, tmp_path / "out")
    names = sorted(p.name for p in paths)
    assert "page-0001-large.png" in names and "page-0002-tiny.png" in names and "page-0001.json" in names
    assert len(paths) == len(pages) * 5
    meta = json.loads((tmp_path / "out" / "page-0001.json").read_text(encoding="utf-8"))
    assert meta["content_hash"] == pages[0].content_hash and meta["renderer_version"] == RENDERER_VERSION
    assert meta["lines"][1]["span"] == list(pages[0].lines[1].span)
    assert meta["tiers"]["tiny"]["side"] == 512
    with Image.open(tmp_path / "out" / "page-0001-small.png") as im:
        assert im.size == (640, 640)
    assert (tmp_path / "out" / "page-0001-large.png").read_bytes() == pages[0].png


def test_glyph_cache_drawing_matches_pillow_text_drawing():
    """draw.py stamps cached FreeType glyphs; the page must look like ImageDraw.text would draw it."""
    from PIL import ImageDraw

    from renderers import draw_layout
    from renderers.fonts import pil_font

    turns = CHAT + [("assistant", "AVATAR Today WAVE — kerning, «quotes», e\u0301\n```\n\tcode()\n```")]
    lay = layout_pages(turns)[0]
    ref = Image.new("L", (lay.side, lay.side), 255)
    d = ImageDraw.Draw(ref)
    for p in lay.placed:
        if p.band:
            d.rectangle((p.band[0], p.band[1], p.band[2] - 1, p.band[3] - 1), fill=lay.header_band_grey)
        for r in p.runs:
            d.text((lay.margin_px + r.x, p.baseline), r.text, font=pil_font(r.font, lay.font_px), fill=0, anchor="ls")
    ours = np.asarray(draw_layout(lay)).astype(int)
    diff = np.abs(ours - np.asarray(ref).astype(int))
    assert (ours < 128).sum() > 1000
    assert (diff > 0).mean() < 0.001 and diff.max() <= 64


def test_encode_png_round_trips_every_pixel_and_is_byte_stable():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(37, 53), dtype=np.uint8)
    pixels[:, :20] = 255  # flat runs, as on a page
    image = Image.fromarray(pixels)
    png = encode_png(image)
    assert png == encode_png(Image.fromarray(pixels.copy()))
    back = Image.open(io.BytesIO(png))
    back.load()
    assert back.mode == "L" and back.size == (53, 37)
    np.testing.assert_array_equal(np.asarray(back), pixels)
    with pytest.raises(ValueError, match="greyscale"):
        encode_png(image.convert("RGB"))
