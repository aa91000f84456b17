"""RenderConfig validation and font pinning."""

from __future__ import annotations

import shutil

import pytest
from pydantic import ValidationError

from renderers import FontMismatchError, RenderConfig
from renderers.fonts import CHAINS, FONTS, font_path, sha256_file, verify_font_file
from renderers.metrics import metrics_for


@pytest.mark.parametrize(
    "field,value",
    [("page_px", 10), ("page_px", "big"), ("font_px", 2), ("margin_px", -1), ("line_spacing", 0.5),
     ("tab_width", 0), ("tab_width", 99), ("header_style", "neon"), ("header_band_grey", 300),
     ("fill_min_font_px", 1), ("turn_gap_px", -3)],
)
def test_invalid_field_values_name_the_field(field, value):
    with pytest.raises(ValidationError) as e:
        RenderConfig(**{field: value})
    assert field in str(e.value)


def test_unknown_field_is_rejected():
    with pytest.raises(ValidationError, match="font_size"):
        RenderConfig(font_size=20)


def test_config_is_frozen():
    cfg = RenderConfig()
    with pytest.raises(ValidationError):
        cfg.font_px = 30


@pytest.mark.parametrize(
    "kwargs,field",
    [({"font_px": 120}, "font_px"), ({"margin_px": 640}, "margin_px"),
     ({"fill": True, "fill_min_font_px": 50, "fill_max_font_px": 40}, "fill_min_font_px"),
     ({"page_px": 256, "font_px": 30}, "font_px")],
)
def test_geometry_errors_name_the_field(kwargs, field):
    with pytest.raises(ValidationError, match=field):
        RenderConfig(**kwargs)


def test_defaults():
    cfg = RenderConfig()
    assert (cfg.page_px, cfg.font_px, cfg.margin_px, cfg.line_spacing) == (1280, 20, 20, 1.2)
    assert RenderConfig.model_validate({"font_px": 24}).font_px == 24


def test_installed_fonts_match_their_pins():
    for key, spec in FONTS.items():
        path = font_path(key)
        assert path.name == spec.filename
        assert sha256_file(path) == spec.sha256


def test_a_different_font_file_raises_font_mismatch(tmp_path):
    copy = tmp_path / "DejaVuSans.ttf"
    shutil.copyfile(font_path("sans"), copy)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(FontMismatchError) as e:
        verify_font_file(copy, FONTS["sans"].sha256)
    err = e.value
    assert err.path == copy and err.expected == FONTS["sans"].sha256 and err.actual == sha256_file(copy)
    assert str(copy) in str(err) and err.expected in str(err) and err.actual in str(err)


def test_fonts_are_chosen_by_cmap_coverage():
    m = metrics_for(20)
    assert m.glyph("text", "a").font == "sans"
    assert m.glyph("text", "中").font == "cjk"
    assert m.glyph("text", "，").font == "cjk"
    assert m.glyph("code", "a").font == "mono"
    assert m.glyph("code", "中").font == "cjk"
    assert m.glyph("header", "A").font == "bold"
    ph = m.glyph("text", "\U0001FAE0")  # no pinned font has this emoji
    assert ph.is_placeholder and ph.drawn == "[U+1FAE0]" and ph.font == CHAINS["text"][0]
