"""The pager: pure turns → sealed page records; bounded work per call."""

import json

from optmem.pager import Pager, turn_inputs
from optmem.store import TurnPos, TurnRow
from optmem.tokens import count_tokens
from renderers import RenderConfig, Tier, layout_pages


def _pager(first_tier="large"):
    return Pager(RenderConfig(), first_tier=Tier(first_tier), max_ledger_strings=24, count_tokens=count_tokens)


def _turns(texts, first=1):
    return [TurnRow(first + i, "user" if i % 2 == 0 else "assistant", t, 1_700_000_000.0 + 60 * i)
            for i, t in enumerate(texts)]


def test_pages_from_a_prefix_equal_pages_from_the_whole_text():
    long = " ".join(f"word{i}" for i in range(30_000))  # about 30 pages
    turns = _turns([long, "after"])
    packed = _pager().pack(turns, TurnPos(1, 0), max_seals=3)
    assert len(packed.sealed) == 3 and packed.fill is None  # bounded: the rest waits
    full = layout_pages(turn_inputs(turns, 0), RenderConfig())
    for page, layout in zip(packed.sealed, full):
        assert page.source_text == layout.source_text
        assert [tuple(d["box"]) for d in json.loads(page.layout_json)] == [line.box for line in layout.lines]
    assert packed.next_start == TurnPos(1, full[3].start.char)


def test_packing_continues_where_the_last_call_stopped():
    long = " ".join(f"word{i}" for i in range(12_000))
    turns = _turns([long])
    pager = _pager()
    first = pager.pack(turns, TurnPos(1, 0), max_seals=2)
    rest = pager.pack(turns, first.next_start, max_seals=100)
    once = pager.pack(turns, TurnPos(1, 0), max_seals=100)
    assert [p.png for p in first.sealed + rest.sealed] == [p.png for p in once.sealed]
    assert rest.fill is not None and rest.fill.start == rest.next_start


def test_many_short_turns_are_cut_by_count_too():
    turns = _turns(["hi"] * 3000)
    packed = _pager().pack(turns, TurnPos(1, 0), max_seals=1)
    assert len(packed.sealed) == 1 and packed.fill is None
    assert packed.sealed[0].first == TurnPos(1, 0) and packed.sealed[0].last.turn < 200


def test_sealed_page_records_are_stored_at_the_first_tier():
    turns = _turns([" ".join(f"w{i}" for i in range(3000)), "the door code is 4821-XK"])
    packed = _pager("small").pack(turns, TurnPos(1, 0), max_seals=8)
    page = packed.sealed[0]
    assert page.tier == "small" and page.png[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.text_tokens == count_tokens(page.source_text) and page.last_timestamp == turns[0].timestamp


def test_still_fits_lays_out_new_turns_only_while_they_fit():
    pager = _pager()
    turns = _turns(["short turn"] * 3)
    packed = pager.pack(turns, TurnPos(1, 0), max_seals=8)
    assert packed.sealed == [] and packed.fill.laid_out_through == 3
    grown = pager.still_fits(packed.fill, TurnPos(1, 0), _turns(["another"], first=4))
    assert grown.laid_out_through == 4 and grown.bottom_px > packed.fill.bottom_px
    assert pager.still_fits(packed.fill, TurnPos(2, 0), []) is None  # another page: lay out again
    assert pager.still_fits(packed.fill, TurnPos(1, 0), _turns(["x " * 5000], first=4)) is None
