"""Line breaking by real glyph metrics: wrapping, CJK kinsoku, code blocks, placeholders."""

from __future__ import annotations

import math

import pytest

from renderers import RenderConfig, layout_pages
from renderers.config import line_pitch
from renderers.fonts import pil_font
from renderers.metrics import metrics_for
from renderers.text import CLOSING, OPENING

CFG = RenderConfig()
WIDTH = CFG.page_px - 2 * CFG.margin_px


def text_lines(layouts):
    return [ln for lay in layouts for ln in lay.lines if ln.kind != "header"]


def test_measurement_matches_pillow():
    """Widths are sums of cached advances (+ kern pairs); Pillow must agree on each run."""
    sample = ("AVATAR Today WAVE, Typography: fjord «quoted» naïve café — 0123456789 LT Yo. " * 12
              + "混合 mixed 中文，文本。 Ελληνικά кириллица")
    layout = layout_pages(sample)[0]
    checked = 0
    for placed in layout.placed:
        runs = placed.runs
        for run, nxt in zip(runs, runs[1:] + (None,)):
            length = pil_font(run.font, CFG.font_px).getlength(run.text)
            if nxt is not None:
                assert run.x + length == pytest.approx(nxt.x, abs=1e-9)
            checked += 1
        if placed.line.kind == "text":
            # The line's right edge is where Pillow ends the last run (boxes are rounded up).
            last = runs[-1]
            end = last.x + pil_font(last.font, CFG.font_px).getlength(last.text)
            x0, _, x1, _ = placed.line.box
            assert x1 == CFG.margin_px + math.ceil(end), placed.line.text
            whole = pil_font(runs[0].font, CFG.font_px).getlength(placed.line.drawn)
            if len(runs) == 1:
                assert end == pytest.approx(whole, abs=1e-9)  # sum of cached advances + kerning == Pillow
    assert checked > 10


def test_kerned_pair_is_measured():
    m = metrics_for(20)
    assert m.kern("sans", "AV") < 0  # DejaVu's kern table tightens AV
    assert m.kern("sans", "ab") == 0


def test_latin_wraps_at_spaces_and_fills_lines():
    words = " ".join(f"token{i}" for i in range(600))
    lines = text_lines(layout_pages(words))
    assert len(lines) > 5
    for ln in lines:
        assert not ln.text.startswith(" ") and not ln.text.endswith(" ")
        assert ln.box[2] <= CFG.page_px - CFG.margin_px
    # Every word stays whole.
    assert " ".join(ln.text for ln in lines) == words
    # Greedy: the next word would not have fitted on the line.
    sans = pil_font("sans", CFG.font_px)
    for a, b in zip(lines, lines[1:]):
        assert sans.getlength(a.text + " " + b.text.split(" ")[0]) > WIDTH


@pytest.mark.parametrize("token", ["x" * 500, "https://example.com/" + "a1b2c3" * 80, "f" * 2000])
def test_long_token_breaks_at_character_level(token):
    lines = text_lines(layout_pages(f"see {token} end"))
    assert "".join(ln.text for ln in lines).replace(" ", "") == f"see{token}end"
    assert len(lines) >= 3
    for ln in lines:
        assert CFG.margin_px <= ln.box[0] < ln.box[2] <= CFG.page_px - CFG.margin_px


def test_cjk_breaks_per_character_without_leading_closers():
    text = "这是一个测试句子，包含标点符号。“引号”也在里面！（括号）「书名」《标题》？" * 40
    lines = text_lines(layout_pages(text))
    assert len(lines) > 5
    assert "".join(ln.text for ln in lines) == text
    for ln in lines:
        assert ln.text[0] not in CLOSING, ln.text
        assert ln.text[-1] not in OPENING, ln.text
    # Per-character breaking fills lines to within one full-width character.
    for ln in lines[:-1]:
        assert ln.box[2] - ln.box[0] > WIDTH - 3 * CFG.font_px


def test_mixed_scripts_share_a_line():
    layout = layout_pages("English words 和中文 mixed on one line, Ελληνικά too.")[0]
    (line,) = layout.lines
    fonts = {r.font for r in layout.placed[0].runs}
    assert fonts == {"sans", "cjk"}
    assert line.text == line.drawn


def test_code_blocks_keep_indentation_in_monospace():
    text = "Here is code:\n```python\ndef f(x):\n    if x:\n\treturn x  # tabbed\n```\nAfter."
    layout = layout_pages([("assistant", text)])[0]
    by_text = {p.line.text: p for p in layout.placed}
    assert by_text["Here is code:"].line.kind == "text"
    for key in ("```python", "def f(x):", "    if x:", "\treturn x  # tabbed", "```"):
        placed = by_text[key]
        assert placed.line.kind == "code"
        assert {r.font for r in placed.runs} == {"mono"}
    assert by_text["After."].line.kind == "text"
    space = pil_font("mono", CFG.font_px).getlength(" ")
    assert by_text["    if x:"].runs[0].x == 0 and by_text["    if x:"].runs[0].text.startswith("    ")
    tab_run = by_text["\treturn x  # tabbed"].runs[0]
    assert tab_run.x == pytest.approx(CFG.tab_width * space)
    assert tab_run.text == "return x  # tabbed"


def test_code_fence_state_survives_page_breaks():
    code = "```\n" + "\n".join(f"    line_{i} = compute({i})" for i in range(200)) + "\n```\nprose after"
    layouts = layout_pages([("assistant", code)])
    assert len(layouts) >= 2
    second_body = [ln for ln in layouts[1].lines if ln.kind != "header"]
    assert second_body[0].kind == "code" and second_body[0].text.startswith("    line_")
    assert text_lines(layouts)[-1].kind == "text"


def test_blank_lines_and_paragraphs_are_kept():
    layout = layout_pages("first paragraph\n\n\nsecond paragraph\r\nthird line\rfourth")[0]
    lines = layout.lines
    assert [ln.text for ln in lines] == ["first paragraph", "second paragraph", "third line", "fourth"]
    pitch = line_pitch(CFG.font_px, CFG.line_spacing)
    assert lines[1].box[1] - lines[0].box[1] == 3 * pitch  # two blank lines in between
    assert lines[2].box[1] - lines[1].box[1] == pitch


def test_placeholders_for_uncovered_and_invisible_characters():
    text = "a\x00b\u200bc\u202ed\ud800e\uffff f\U0001FAE0g\x07"
    (line,) = layout_pages(text)[0].lines
    assert line.text == text
    assert line.drawn == "a[U+0000]b[U+200B]c[U+202E]d[U+D800]e[U+FFFF] f[U+1FAE0]g[U+0007]"


def test_combining_marks_are_drawn_not_dropped():
    (line,) = layout_pages("e\u0301 a\u0308")[0].lines
    assert line.drawn == "e\u0301 a\u0308"


def test_page_boxes_never_leave_the_page():
    cfg = RenderConfig(page_px=256, font_px=12, margin_px=0)
    layouts = layout_pages([("u", "W" * 3000 + " 中" * 500)], cfg)
    for lay in layouts:
        for ln in lay.lines:
            x0, y0, x1, y1 = ln.box
            assert 0 <= x0 < x1 <= 256 and 0 <= y0 < y1 <= 256


def test_fill_picks_the_largest_font_that_fits():
    short = [("user", "A short note."), ("assistant", "Drawn big.")]
    assert layout_pages(short, RenderConfig(fill=True))[0].font_px == RenderConfig().fill_max_font_px
    text = [("user", "medium words " * 150), ("assistant", "and a reply " * 40)]
    cfg = RenderConfig(fill=True)
    layouts = layout_pages(text, cfg)
    size = layouts[0].font_px
    assert len(layouts) == 1 and cfg.fill_min_font_px < size < cfg.fill_max_font_px
    assert layout_pages(text, RenderConfig(font_px=size))[0].end == (2, 0)
    assert layout_pages(text, RenderConfig(font_px=size + 1))[0].end != (2, 0)


def test_fill_falls_back_to_min_size_for_long_text():
    words = " ".join(f"w{i}" for i in range(8000))
    layouts = layout_pages(words, RenderConfig(fill=True))
    assert len(layouts) > 1 and layouts[0].font_px == RenderConfig().fill_min_font_px
