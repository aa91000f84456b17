from PIL import Image
import pytest
from hypothesis import given, settings, strategies as st

from optmem.assembler import BudgetError, Expansion, MemoryPage, RecentTurn, assemble
from optmem.reader import ESCAPED_IMAGE_PLACEHOLDER
from optmem.modes import TIER_NAMES
from optmem.tokens import count_tokens
from renderers import encode_png


class _BlankPage:
    def image(self, side, crop=0):
        return Image.new("L", (side, side), 255)

    def png(self, side, crop=0):
        return encode_png(self.image(side))


def _pages(tiers, ledger=("AB-1234", "0x9f3a")):
    return [MemoryPage(number=i + 1, tier=t, first_turn=10 * i + 1, last_turn=10 * i + 10,
                       ledger=tuple(ledger), image_source=_BlankPage()) for i, t in enumerate(tiers)]


RECENT = [RecentTurn(101, "user", "What was the code again?"), RecentTurn(102, "assistant", "Let me check.")]


def test_positions_are_bos_plus_slots_plus_text_tokens():
    ctx = assemble(pages=_pages(["tiny", "small", "large"]), recent=RECENT, expansions=[], budget=8192, ledger=True)
    kinds = [s.kind for s in ctx.segments]
    assert kinds == ["page", "ledger", "page", "ledger", "page", "ledger", "turn", "turn"]
    text_positions = sum(count_tokens(s.text) for s in ctx.segments if s.kind != "page")
    assert ctx.positions == 1 + 73 + 111 + 421 + text_positions
    assert ctx.page_tiers() == {1: "tiny", 2: "small", 3: "large"}


def test_budget_degrades_oldest_first_and_keeps_recent_turns():
    full = assemble(pages=_pages(["large", "large"], ledger=()), recent=RECENT, expansions=[], budget=8192, ledger=True)
    tight = assemble(pages=_pages(["large", "large"], ledger=()), recent=RECENT, expansions=[],
                     budget=full.positions - 1, ledger=True)
    assert tight.page_tiers() == {1: "base", 2: "large"} and tight.positions <= full.positions - 1
    turns_only = full.positions - 2 * 421
    assert assemble(pages=_pages(["large", "large"], ledger=()), recent=RECENT, expansions=[],
                    budget=turns_only, ledger=True).page_tiers() == {}


def test_recent_turns_over_budget_is_a_clear_error():
    with pytest.raises(BudgetError, match="newest 2 turns alone need"):
        assemble(pages=[], recent=RECENT, expansions=[], budget=5, ledger=True)


def test_expanded_page_replaces_its_image_in_order():
    ctx = assemble(pages=_pages(["tiny", "tiny", None]), recent=RECENT, budget=8192, ledger=False,
                   expansions=[Expansion(3, "the door code is 4821-XK", "verbatim", "tiny"),
                               Expansion(2, "second page text", "ocr", "tiny")])
    assert [(s.kind, getattr(s, "page", None)) for s in ctx.segments][:3] == [("page", 1), ("expanded", 2), ("expanded", 3)]
    assert "4821-XK" in ctx.to_text()


def test_excerpts_follow_their_page_image_and_count_in_the_budget():
    pages = _pages(["tiny", "small", None], ledger=())
    ctx = assemble(pages=pages, recent=RECENT, budget=8192, ledger=False,
                   expansions=[Expansion(2, "the door code is 4821-XK", "verbatim", "small", excerpt=(14, 15)),
                               Expansion(3, "out of context, still found", "ocr", "tiny", excerpt=(21, 21)),
                               Expansion(2, "an earlier part", "verbatim", "small", excerpt=(11, 12)),
                               Expansion(2, "the door code is 4821-XK", "verbatim", "small", excerpt=(14, 15))])
    shape = [(s.kind, s.page, getattr(s, "first_turn", None)) for s in ctx.segments if s.kind != "turn"]
    assert shape == [("page", 1, 1), ("page", 2, 11), ("expanded", 2, 11), ("expanded", 2, 14), ("expanded", 3, 21)]
    assert ctx.page_tiers() == {1: "tiny", 2: "small"} and ctx.expanded_pages() == []
    assert "[memory page 2, turns 14-15, excerpt]\nthe door code is 4821-XK" in ctx.to_text()
    bare = assemble(pages=pages, recent=RECENT, budget=8192, ledger=False, expansions=[])
    assert ctx.positions == bare.positions + sum(s.positions for s in ctx.segments if s.kind == "expanded")
    tight = assemble(pages=pages, recent=RECENT, budget=bare.positions, ledger=False,
                     expansions=[Expansion(2, "the door code is 4821-XK", "verbatim", "small", excerpt=(14, 15))])
    assert tight.positions <= bare.positions  # the excerpt is paid for by blurring a page


def test_a_run_dated_by_the_run_before_it_gets_its_own_date_when_that_one_is_left_out():
    pages = _pages(["tiny", None], ledger=())
    runs = [Expansion(2, "user: an early turn " + "word " * 400, "verbatim", "tiny", excerpt=(12, 12),
                      heading="[2023-05-08]", dated="[2023-05-08]"),
            Expansion(2, "user: a later turn the same day", "verbatim", "tiny", excerpt=(15, 15),
                      heading="", dated="[2023-05-08]")]
    roomy = assemble(pages=pages, recent=RECENT, budget=8192, ledger=False, expansions=runs)
    assert "[2023-05-08]\nuser: an early turn" in roomy.to_text()
    assert "\nuser: a later turn the same day\n" in roomy.to_text() and roomy.to_text().count("[2023-05-08]") == 1
    bare = assemble(pages=pages, recent=RECENT, budget=8192, ledger=False, expansions=[])
    tight = assemble(pages=pages, recent=RECENT, budget=bare.positions + 40, ledger=False, expansions=runs)
    assert [s.first_turn for s in tight.segments if s.kind == "expanded"] == [15]  # the long one does not fit
    assert "[2023-05-08]\nuser: a later turn the same day" in tight.to_text()


def test_expansion_that_does_not_fit_is_skipped_not_cut():
    base = assemble(pages=_pages(["tiny"]), recent=RECENT, budget=8192, ledger=False, expansions=[])
    ctx = assemble(pages=_pages(["tiny"]), recent=RECENT, budget=base.positions + 3, ledger=False,
                   expansions=[Expansion(1, "word " * 200, "verbatim", "tiny")])
    assert ctx.expanded_pages() == [] and ctx.positions <= base.positions + 3


def test_to_messages_escapes_image_placeholders_and_embeds_pages():
    recent = [RecentTurn(1, "user", "please ignore <image> this"), RecentTurn(2, "assistant", "ok <image>")]
    ctx = assemble(pages=_pages(["tiny"], ledger=("<image>",)), recent=recent, expansions=[], budget=8192, ledger=True)
    messages = ctx.to_messages()
    assert [m["role"] for m in messages] == ["user", "assistant"]  # memory is user content, never system
    parts = messages[0]["content"]
    assert sum(p["type"] == "image_url" for p in parts) == 1
    assert parts[[p["type"] for p in parts].index("image_url")]["image_url"]["url"].startswith("data:image/png;base64,")
    flat = repr(messages)
    assert "<image>" not in flat and ESCAPED_IMAGE_PLACEHOLDER in parts[-1]["text"]


@settings(max_examples=150, derandomize=True)
@given(st.lists(st.sampled_from(TIER_NAMES), max_size=30), st.integers(0, 12_000), st.booleans())
def test_context_never_exceeds_the_budget(tiers, extra, ledger):
    minimum = assemble(pages=[], recent=RECENT, expansions=[], budget=10**6, ledger=ledger).positions
    budget = minimum + extra
    ctx = assemble(pages=_pages(tiers), recent=RECENT, expansions=[Expansion(1, "x " * 50, "verbatim", "tiny")] if tiers else [],
                   budget=budget, ledger=ledger)
    assert ctx.positions <= budget


def test_viewer_names_an_excerpt_and_its_turns():
    from optmem.viewer.render import _context

    ctx = assemble(pages=_pages(["tiny"], ledger=()), recent=RECENT, budget=8192, ledger=False,
                   expansions=[Expansion(1, "the code is <b>42</b>", "verbatim", "tiny", excerpt=(3, 4))])
    html_text = _context(0, "layout", ctx, open_page=None)
    assert "page 1 excerpt, turns 3–4 (verbatim, from the archive): the code is &lt;b&gt;42&lt;/b&gt;" in html_text


def test_an_image_is_worth_sending_against_the_text_in_the_readers_own_tokens():
    from optmem.reader import Reader

    reader = Reader("gpt-4o")  # high 765, low 85
    page = MemoryPage(number=1, tier="large", first_turn=1, last_turn=10, ledger=(), image_source=_BlankPage(),
                      text_tokens=2000, reader_text_tokens=300)
    ctx = assemble(pages=[page], recent=RECENT, expansions=[], budget=8192, ledger=False, reader=reader)
    # 2000 DeepSeek tokens would let the 765-token image go; 300 of gpt-4o's own do not
    assert [reader.image_tokens(t) for t in ctx.page_tiers().values()] == [85]
    deepseek_only = MemoryPage(number=1, tier="large", first_turn=1, last_turn=10, ledger=(), image_source=_BlankPage(),
                               text_tokens=2000)
    ctx = assemble(pages=[deepseek_only], recent=RECENT, expansions=[], budget=8192, ledger=False, reader=reader)
    assert [reader.image_tokens(t) for t in ctx.page_tiers().values()] == [765]
