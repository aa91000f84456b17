"""Bad and hostile input renders (or is visibly replaced) and never crashes; layout invariants
checked on arbitrary Unicode with hypothesis."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renderers import RenderConfig, TurnInput, draw_page, layout_pages, render_pages

SMALL = RenderConfig(page_px=256, font_px=12, margin_px=8)
SMALL_CONFIGS = [
    SMALL,
    RenderConfig(page_px=256, font_px=12, margin_px=0, header_placement="line", header_style="bold", line_spacing=1.0),
    RenderConfig(page_px=320, font_px=14, margin_px=5, headers=False, tab_width=8, turn_gap_px=0),
]


def check_invariants(turns: list[TurnInput], layouts, cfg: RenderConfig) -> None:
    side, margin = cfg.page_px, cfg.margin_px
    assert layouts, "every non-empty input gives at least one page"
    assert layouts[0].start == (0, turns[0].start)
    assert layouts[-1].end == (len(turns), 0)
    for a, b in zip(layouts, layouts[1:]):
        assert a.end == b.start
    spans: dict[int, list[tuple[int, int]]] = {}
    for lay in layouts:
        assert lay.side == side
        for ln in lay.lines:
            x0, y0, x1, y1 = ln.box
            assert margin <= x0 < x1 <= side - margin and margin <= y0 < y1 <= side - margin, ln
            t, s, e = ln.span
            if ln.kind == "header":
                assert s == e
                continue
            assert ln.text == turns[t].text[s:e] and e > s
            spans.setdefault(t, []).append((s, e))
    for t, turn in enumerate(turns):
        ordered = spans.get(t, [])
        for (s0, e0), (s1, e1) in zip(ordered, ordered[1:]):
            assert e0 <= s1, "spans in order, without overlap"
        covered = bytearray(len(turn.text))
        for s, e in ordered:
            for i in range(s, e):
                covered[i] += 1
        for i, ch in enumerate(turn.text):
            if i >= turn.start and not ch.isspace():
                assert covered[i] == 1, (i, ch)


def turns_of(texts, roles=("user", "assistant")):
    return [TurnInput(roles[i % 2], t) for i, t in enumerate(texts)]


NASTY = [
    "", " ", "\n", "\n\n\n", "   \t  \n  ", "\x00", "\x00\x01\x02\x1b[31mred\x1b[0m\x7f", "\ud800\udfff\ud83d",
    "\ufffe\uffff\U0010ffff", "\u200b\u200c\u200d\u2060\ufeff", "e\u0301\u0302\u0303\u0304" * 10,
    "\u202eevil\u202c \u2066isolate\u2069 \u200f", "Z̸̡̢͇̞̼̤̣̼̳͎͓͓̟̀̽͌͆̈́̓̅a̵l̵g̵o̵", "\u2028\u2029\x85\x0b\x0c",
    "```", "```\n\t\tcode\n", "中" * 3, "，。！？）」》" * 30, "（「《" * 30, "😀🙂👍🏽👨‍👩‍👧", "\U0001FAE0\U000E0001",
    "ﷺ ﷽ 𒐫 ꧅", "a\rb\r\nc\n\rd", "\t" * 50 + "x",
]


@pytest.mark.parametrize("text", NASTY, ids=range(len(NASTY)))
def test_nasty_text_renders(text):
    turns = turns_of([text, "after"])
    pages = render_pages(turns)
    check_invariants(turns, [p.layout for p in pages], RenderConfig())
    assert all(p.image.size == (1280, 1280) for p in pages)
    assert any(ln.kind == "header" and ln.text == "assistant · #2" for p in pages for ln in p.lines)


def test_empty_and_whitespace_only_give_a_header_page():
    for text in ("", "   ", "\n\t\n"):
        (page,) = render_pages([("user", text)])
        assert [ln.kind for ln in page.lines] == ["header"]
    (blank,) = render_pages("")
    assert blank.lines == () and blank.image.getextrema() == (255, 255)


def test_invisible_characters_become_visible_placeholders():
    (page,) = render_pages("\u200b")
    (line,) = page.lines
    assert line.drawn == "[U+200B]"
    assert page.image.getextrema()[0] < 128  # ink on the page


def test_one_megabyte_single_turn():
    rng = random.Random(7)
    pieces = ["alpha", "beta", "中文测试，", "https://example.com/" + "q" * 120, "\n", "\t", "\x00", "e\u0301",
              "```", "\ud800", "word" * 40]
    parts, size = [], 0
    while size < 1_000_000:
        p = rng.choice(pieces) + (" " if rng.random() < 0.7 else "")
        parts.append(p)
        size += len(p)
    text = "".join(parts)[:1_000_000]
    turns = [TurnInput("user", text)]
    layouts = layout_pages(turns)
    assert len(layouts) > 100
    check_invariants(turns, layouts, RenderConfig())
    for lay in (layouts[0], layouts[len(layouts) // 2], layouts[-1]):
        assert draw_page(lay).image.size == (1280, 1280)


def test_ten_thousand_tiny_turns():
    turns = [TurnInput("user" if i % 2 else "assistant", str(i)) for i in range(10_000)]
    layouts = layout_pages(turns)
    check_invariants(turns, layouts, RenderConfig())
    numbers = [ln.text for lay in layouts for ln in lay.lines if ln.kind == "text"]
    assert numbers == [str(i) for i in range(10_000)]
    assert draw_page(layouts[-1]).image.size == (1280, 1280)


_PIECES = st.sampled_from([" ", "  ", "\n", "\n\n", "\t", "\r\n", "```", "，", "。", "）", "（", "中文", "word",
                           "x" * 60, "\u0301", "\u200b", "\ud800", "\x00", "😀", "\U0001FAE0", "[U+0041]"])
_TEXT = st.lists(st.one_of(st.text(st.characters(codec=None), max_size=40), _PIECES), max_size=30).map("".join)


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(_TEXT, min_size=1, max_size=4), role=st.text(max_size=12), starts=st.data(),
       cfg=st.sampled_from(SMALL_CONFIGS))
def test_property_layout_invariants(texts, role, starts, cfg):
    turns = []
    for i, t in enumerate(texts):
        start = starts.draw(st.integers(0, len(t))) if i == 0 else 0
        turns.append(TurnInput(role if i % 2 == 0 else "assistant", t, start=start))
    layouts = layout_pages(turns, cfg)
    check_invariants(turns, layouts, cfg)
    page = draw_page(layouts[0])
    assert page.image.size == (cfg.page_px, cfg.page_px) and page.image.mode == "L"


@settings(max_examples=25, derandomize=True, deadline=None)
@given(text=_TEXT)
def test_property_default_page(text):
    turns = [TurnInput("user", text * 3)]
    layouts = layout_pages(turns)
    check_invariants(turns, layouts, RenderConfig())


@settings(max_examples=30, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(_TEXT.map(lambda t: t * 4), min_size=1, max_size=4), cfg=st.sampled_from(SMALL_CONFIGS))
def test_property_resuming_at_a_page_start_gives_the_same_page(texts, cfg):
    """The memory layer lays out again from a sealed page's end; the next page must not change."""
    turns = [TurnInput("user" if i % 2 == 0 else "assistant", t, number=i + 1) for i, t in enumerate(texts)]
    layouts = layout_pages(turns, cfg)
    for k in range(1, len(layouts)):
        t, off = layouts[k].start
        resumed = [TurnInput(turns[t].role, turns[t].text, number=t + 1, start=off)] + turns[t + 1:]
        again = layout_pages(resumed, cfg)[0]
        expected = [(ln.box, ln.text, ln.kind, (ln.span[0] - t,) + ln.span[1:]) for ln in layouts[k].lines]
        assert [(ln.box, ln.text, ln.kind, ln.span) for ln in again.lines] == expected
