"""The memory viewer, read back with html.parser (no browser needed): every sealed page links its
stored image at full size, one page count, collapsed context rows, word-boundary cuts, the ledger."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from optmem import MemoryConfig, OpticalMemory
from optmem.demo import build_conversation
from optmem.viewer import page_count, write_viewer
from optmem.viewer.layout import layout_rows
from optmem.viewer.text import ELLIPSIS, number_ranges, shorten
from renderers import Tier, encode_png


@dataclass
class PageCard:
    number: int
    sealed: bool
    image_tier: str
    images: list[dict] = field(default_factory=list)  # attributes of each <img class="page-image">
    links: list[str] = field(default_factory=list)  # hrefs of its full-size links
    texts: list[str] = field(default_factory=list)  # the <pre class="text"> blocks


class ViewerDOM(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.cards: list[PageCard] = []
        self.rows: list[list[str]] = []  # every table row's cells, as text
        self.text: list[str] = []
        self._card: PageCard | None = None
        self._pre: list[str] | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "article" and "page" in a.get("class", "").split():
            self._card = PageCard(int(a["data-page"]), a["data-sealed"] == "yes", a["data-image-tier"])
            self.cards.append(self._card)
        elif tag == "img" and a.get("class") == "page-image" and self._card is not None:
            self._card.images.append(a)
        elif tag == "a" and self._card is not None and "full-size-link" in a.get("class", ""):
            self._card.links.append(a["href"])
        elif tag == "pre" and self._card is not None:
            self._pre = []
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "article":
            self._card = None
        elif tag == "pre" and self._pre is not None:
            self._card.texts.append("".join(self._pre))
            self._pre = None
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._pre is not None:
            self._pre.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def all_text(self) -> str:
        return "".join(self.text)


# -- the tests -------------------------------------------------------------------------------------


def small_config(**overrides) -> MemoryConfig:
    return MemoryConfig.model_validate({"retrieval": {"enabled": False}, "recent_turns": 6, **overrides})


def fill(mem, turns):
    for i, (role, text) in enumerate(turns):
        mem.add(role, text, timestamp=1_700_000_000 + 60 * i)


@pytest.fixture(scope="module")
def memory(tmp_path_factory):
    """A memory whose pages span every tier of the default schedule, and its viewer."""
    root = tmp_path_factory.mktemp("viewer")
    turns, _ = build_conversation(240, seed=3)
    mem = OpticalMemory.open(root / "m.db", "alice", small_config())
    fill(mem, turns)
    index = write_viewer(mem, root / "out")
    yield mem, index
    mem.close()


def test_every_sealed_page_links_its_stored_image_at_full_size(memory):
    mem, index = memory
    dom = ViewerDOM(index.read_text(encoding="utf-8"))
    sealed = [p for p in mem.pages() if p.sealed]
    cards = {c.number: c for c in dom.cards if c.sealed}
    assert sorted(cards) == [p.number for p in sealed] and len(sealed) >= 10
    assert {p.image_tier for p in sealed} >= {"large", "base", "small", "tiny"}
    for info in sealed:
        card = cards[info.number]
        assert card.image_tier == info.image_tier
        [img] = card.images
        assert card.links == [img["src"]]  # the caption's link opens the very image shown
        path = index.parent / img["src"]
        side = Tier(info.image_tier).side
        assert path.read_bytes() == encode_png(mem.page_image(info.number))  # the stored image, not a thumbnail
        assert Image.open(io.BytesIO(path.read_bytes())).size == (side, side) == (int(img["width"]), int(img["height"]))


def test_pages_are_oldest_first_with_one_count_that_names_the_open_page(memory):
    mem, index = memory
    dom = ViewerDOM(index.read_text(encoding="utf-8"))
    pages = mem.pages()
    open_page = pages[-1]
    assert not open_page.sealed  # 240 turns leave some on the open page
    assert [c.number for c in dom.cards] == [p.number for p in pages] == sorted(p.number for p in pages)
    assert not dom.cards[-1].sealed
    sealed = len(pages) - 1
    assert page_count(pages) == f"{sealed} sealed pages + the open page {open_page.number}"
    assert f"{len(pages)} pages: {sealed} sealed pages + the open page {open_page.number}." in dom.all_text
    assert "Pages, oldest first" in dom.all_text


def test_each_page_shows_its_verbatim_text(memory):
    mem, index = memory
    dom = ViewerDOM(index.read_text(encoding="utf-8"))
    for card in dom.cards:
        if card.sealed:
            assert card.texts == [mem.page_text(card.number)]
        else:  # the open page: its turns, the first one from where the open page starts
            info = mem.pages()[-1]
            last = mem.history()[info.last_turn - 1]
            assert card.texts[0].endswith(last.text) and f"#{info.first_turn}" in card.texts[0]


def test_context_table_collapses_runs_of_pages_at_one_tier(memory):
    mem, index = memory
    ctx = mem.context()
    rows = layout_rows(ctx.segments)
    page_rows = [r for r in rows if r.kind == "pages"]
    tiers_in_order = [s.tier for s in ctx.segments if s.kind == "page"]
    runs = [t for i, t in enumerate(tiers_in_order) if i == 0 or tiers_in_order[i - 1] != t]
    assert [r.tier for r in page_rows] == runs and len(page_rows) < len(tiers_in_order)
    assert sum(r.positions for r in rows) + ctx.overhead == ctx.positions
    assert [p for r in page_rows for p in r.pages] == [s.page for s in ctx.segments if s.kind == "page"]
    table = ViewerDOM(index.read_text(encoding="utf-8")).rows
    assert not any(re.fullmatch(r"page \d+ at \w+", cells[2]) for cells in table if len(cells) > 2)
    tiny = next(r for r in page_rows if r.tier == "tiny")
    assert tiny.what.startswith(f"pages {number_ranges(tiny.pages)} at tiny: {len(tiny.pages)} images")


def test_turn_rows_are_cut_at_a_word_boundary(memory):
    mem, _ = memory
    ctx = mem.context()
    turns = {s.turn_id: " ".join(s.body.split()) for s in ctx.segments if s.kind == "turn"}
    cut = 0
    for row in layout_rows(ctx.segments):
        if row.kind != "turn":
            continue
        shown = row.what.split(": ", 1)[1]
        body = turns[int(row.what.split()[1])]
        if shown.endswith(ELLIPSIS):
            cut += 1
            kept = shown[: -len(ELLIPSIS)]
            assert body.startswith(kept) and body[len(kept)] in " ,;:"  # a whole word, then the cut
        else:
            assert shown == body
    assert cut > 0  # the demo's turns are longer than a row


def test_ledger_lists_the_exact_strings_sent_with_each_page(tmp_path):
    turns, _ = build_conversation(160, seed=5)
    with OpticalMemory.open(tmp_path / "m.db", "a", small_config()) as mem:
        fill(mem, turns)
        index = write_viewer(mem, tmp_path / "out")
        ledgers = {s.page: s.strings for s in mem.context().segments if s.kind == "ledger"}
    assert ledgers  # the planted ids are on pages still in the context
    dom = ViewerDOM(index.read_text(encoding="utf-8"))
    table = {cells[0]: cells[1] for cells in dom.rows if cells and cells[0].startswith("page ")}
    for page, strings in ledgers.items():
        assert table[f"page {page}"] == "".join(strings)


def test_a_query_adds_its_context(tmp_path):
    turns, _ = build_conversation(120, seed=5)
    with OpticalMemory.open(tmp_path / "m.db", "a", small_config()) as mem:
        fill(mem, turns)
        text = ViewerDOM(write_viewer(mem, tmp_path / "out", query="door code").read_text(encoding="utf-8")).all_text
    assert "Context without a query" in text and "Context for 'door code'" in text


class _Reader:
    """An OCR engine that says which image it read."""

    name = "test-reader"

    def __init__(self):
        self.sides = []

    def read(self, image, lines):
        self.sides.append(image.width)
        return f"read at {image.width} px: {lines[0].text if lines else ''}"


def test_optical_archive_shows_ocr_reads_only_when_asked(tmp_path):
    from optmem.store import open_store

    turns, _ = build_conversation(120, seed=5)
    engine = _Reader()
    mem = OpticalMemory(open_store(tmp_path / "m.db"), small_config(archive="optical"), conversation="a", ocr=engine)
    fill(mem, turns)
    sealed = [p for p in mem.pages() if p.sealed]
    plain = ViewerDOM(write_viewer(mem, tmp_path / "plain").read_text(encoding="utf-8"))
    assert engine.sides == [] and all(c.texts == [] for c in plain.cards if c.sealed)
    assert "optmem inspect DB --ocr" in plain.all_text
    seen = []
    read = ViewerDOM(write_viewer(mem, tmp_path / "ocr", ocr=True, progress=lambda d, t: seen.append((d, t)))
                     .read_text(encoding="utf-8"))
    assert seen == [(i, len(sealed)) for i in range(1, len(sealed) + 1)]
    assert engine.sides == [Tier(p.image_tier).side for p in sealed]
    for card, info in zip([c for c in read.cards if c.sealed], sealed):
        assert card.texts == [mem.read_page(info.number)] and card.texts[0].startswith(f"read at {Tier(info.image_tier).side} px")
    mem._store.close()


def test_rewriting_is_byte_identical_and_drops_stale_images(tmp_path):
    turns, _ = build_conversation(200, seed=5)
    with OpticalMemory.open(tmp_path / "m.db", "a", small_config()) as mem:
        fill(mem, turns[:120])
        write_viewer(mem, tmp_path / "out")
        before = sorted(p.name for p in (tmp_path / "out" / "pages").iterdir())
        fill(mem, turns[120:])
        index = write_viewer(mem, tmp_path / "out")
        first = {p.name: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
        write_viewer(mem, tmp_path / "out")
        again = {p.name: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
        expected = {f"page-{p.number:04d}-{p.image_tier}.png" if p.sealed else f"page-{p.number:04d}-open.png"
                    for p in mem.pages()}
    assert first == again
    now = sorted(p.name for p in (tmp_path / "out" / "pages").iterdir())
    assert set(now) == expected and set(before) - set(now)  # pages that blurred left their old file behind
    assert index.name == "index.html"


def test_markup_is_escaped(tmp_path):
    with OpticalMemory.open(tmp_path / "m.db", "<b>&x", small_config(recent_turns=1)) as mem:
        for i in range(40):
            mem.add("user", f"<script>alert({i})</script> & some longer words to fill a page " * 8, timestamp=1e9 + i)
        html = write_viewer(mem, tmp_path / "out").read_text(encoding="utf-8")
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in html
    assert "<b>&x" not in html and "&lt;b&gt;&amp;x" in html
    assert html.count("<script>") == 1  # the viewer's own


def test_an_empty_memory_still_renders(tmp_path):
    with OpticalMemory.open(tmp_path / "m.db", "a", small_config()) as mem:
        mem.add("user", "hello")
        dom = ViewerDOM(write_viewer(mem, tmp_path / "out").read_text(encoding="utf-8"))
    assert dom.cards == [] and "0 pages: 0 sealed pages." in dom.all_text


def test_shorten_cuts_after_a_whole_word():
    assert shorten("the quick brown fox jumps", 12) == "the quick…"
    assert shorten("  short \n text ", 40) == "short text"
    assert shorten("see https://example.com/a/very/long/path/indeed", 20) == "see https://example…"
    assert shorten("one, two, three", 10) == "one, two…"
    with pytest.raises(ValueError, match="limit"):
        shorten("x", 1)


@given(st.text(alphabet="ab ,\n", max_size=80), st.integers(min_value=2, max_value=40))
def test_shorten_never_exceeds_the_limit_and_keeps_a_prefix(text, limit):
    flat = " ".join(text.split())
    out = shorten(text, limit)
    assert len(out) <= limit
    if out.endswith(ELLIPSIS) and out != flat:
        assert flat.startswith(out[: -len(ELLIPSIS)])
    else:
        assert out == flat


def test_number_ranges():
    assert number_ranges([5, 1, 2, 3, 7, 8]) == "1–3, 5, 7–8"
    assert number_ranges([4]) == "4" and number_ranges([]) == ""


def test_pages_out_of_the_context_keep_their_last_image(tmp_path):
    schedule = {"steps": [{"tier": "base", "until": 2}, {"tier": "tiny", "until": 4}]}
    turns, _ = build_conversation(160, seed=5)
    with OpticalMemory.open(tmp_path / "m.db", "a", small_config(schedule=schedule)) as mem:
        fill(mem, turns)
        index = write_viewer(mem, tmp_path / "out")
        evicted = [p for p in mem.pages() if p.sealed and p.tier is None]
    assert evicted
    html = index.read_text(encoding="utf-8")
    cards = {c.number: c for c in ViewerDOM(html).cards}
    for info in evicted:
        [img] = cards[info.number].images
        assert img["src"] == f"pages/page-{info.number:04d}-tiny.png" and (index.parent / img["src"]).is_file()
    assert "out of context" in html and "(not in the context)" in html
