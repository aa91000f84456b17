"""Fuzzing OpticalMemory's public calls (issue 12): any sequence of add / context / recall / pin /
page_image / page_text / pages / history calls with any arguments ends each call in success or
one of optmem's typed errors, and afterwards the memory's invariants hold: history numbered 1..n
holding exactly the turns this conversation added, pages numbered and covering the turns
contiguously, every context inside its budget."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from optmem import BudgetError, InvalidArgument, OpticalMemory
from optmem.store import StoreError, open_store
from tests.fakes import HashEmbedder

FUZZ = settings(max_examples=30, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

# Small pages and a schedule whose every seal moves pages: many seals and tier moves per example.
CONFIG = {"recent_turns": 2, "render": {"page_px": 512, "font_px": 14},
          "schedule": {"steps": [{"tier": "large", "until": 1}, {"tier": "base", "until": 2},
                                 {"tier": "small", "until": 3}, {"tier": "tiny", "until": 5}]},
          "reexpand": {"ocr_backend": "onnxruntime"}}
TYPED = (InvalidArgument, BudgetError, StoreError)  # PinError and InvalidTurn are InvalidArguments


ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=30)
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-10**400, 10**400), st.floats(allow_nan=True),
                 st.binary(max_size=6), ANY_TEXT, st.lists(st.integers(), max_size=2),
                 st.integers(-5, 10**6).map(np.int64))
WORDS = st.lists(st.sampled_from("alpha beta gamma delta code 4821-XK Lisbon sequence setval replica night "
                                 "the of to and a in".split()), min_size=1, max_size=400).map(" ".join)
TURN_TEXT = st.one_of(WORDS, WORDS, ANY_TEXT, WORDS.map(str.encode), st.binary(max_size=8), JUNK)
TIMESTAMP = st.one_of(st.floats(0, 2e9), st.integers(-62135596800, 253402300799), st.none(),
                      st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
                      st.datetimes(timezones=st.just(timezone(timedelta(hours=5)))).filter(lambda d: d.year > 1), JUNK)
ROLE = st.one_of(st.sampled_from(["user", "assistant", "system", "tool"]), JUNK)
PAGE = st.one_of(st.integers(-2, 12), JUNK)
TIER = st.one_of(st.sampled_from(["gundam", "large", "base", "small", "tiny", None, "LARGE", ""]), JUNK)
BUDGET = st.one_of(st.none(), st.integers(1, 20000), st.integers(1, 20000).map(np.int64), JUNK)
QUERY = st.one_of(st.none(), WORDS.map(lambda w: w[:60]), ANY_TEXT, JUNK)

CONV = st.integers(0, 1)  # two conversations share one store
OPS = st.one_of(
    st.tuples(st.just("add"), CONV, ROLE, TURN_TEXT, TIMESTAMP),
    st.tuples(st.just("add"), CONV, st.sampled_from(["user", "assistant"]), WORDS, st.floats(0, 2e9)),
    st.tuples(st.just("context"), CONV, QUERY, BUDGET, st.one_of(st.none(), ANY_TEXT, JUNK)),
    st.tuples(st.just("recall"), CONV, QUERY, st.one_of(st.integers(-1, 5), JUNK)),
    st.tuples(st.just("pin"), CONV, PAGE, TIER),
    st.tuples(st.just("page_image"), CONV, PAGE),
    st.tuples(st.just("page_text"), CONV, PAGE),
    st.tuples(st.just("read"), CONV),
    st.tuples(st.just("pop"), CONV),
    st.tuples(st.just("clear"), CONV),
)


def _check_invariants(mem: OpticalMemory, added: list[tuple[str, str]], peak: int) -> None:
    """``peak``: the most turns the conversation held since it began or was cleared (pops bring
    it below: the pages then reach past the recent window's start)."""
    history = mem.history()
    pages = mem.pages()
    assert [t.id for t in history] == list(range(1, len(history) + 1))
    # This conversation's turns, no other's; a deleting schedule forgets the texts of turns that
    # lived only on deleted pages.
    kept_from = pages[0].first_turn if pages else 1
    assert [(t.role, t.text) for t in history] == [
        (role, None if i + 1 < kept_from and mem.config.schedule.after_last == "delete" else text)
        for i, (role, text) in enumerate(added)]
    if pages:
        first = pages[0].number
        assert [p.number for p in pages] == list(range(first, first + len(pages)))
        assert first == 1 or mem.config.schedule.after_last == "delete"
        if first == 1:
            assert (pages[0].first_turn, pages[0].first_char) == (1, 0)
    assert all(p.sealed for p in pages[:-1])  # only the last page can be the open one
    for a, b in zip(pages, pages[1:]):
        assert b.first_turn in (a.last_turn, a.last_turn + 1), (a, b)
    if pages:
        if len(history) == peak:
            assert pages[-1].last_turn == len(history) - mem.config.recent_turns
        else:
            assert len(history) - mem.config.recent_turns <= pages[-1].last_turn <= peak - mem.config.recent_turns
    for p in pages:
        if p.sealed:
            assert mem.page_image(p.number).width > 0  # hash-checked by the store
            assert p.tier is None or p.tier == p.image_tier or p.pinned


CONFIGS = {
    "pages-evict": CONFIG,
    "excerpts-delete": {**CONFIG, "reexpand": {"unit": "excerpt", "ocr_backend": "onnxruntime"},
                        "schedule": {**CONFIG["schedule"], "after_last": "delete"}},
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def grown(request):
    """Two conversations in one database, each with sealed pages at several tiers (made once per
    config; each example starts from a copy)."""
    config = CONFIGS[request.param]
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    store = open_store(conn)
    for name in "ab":
        with OpticalMemory(store, config, conversation=name, embedder=HashEmbedder()) as mem:
            for i in range(10):
                mem.add("user" if i % 2 else "assistant", f"{name}{i} " + "the replica sends row changes " * 30, timestamp=i)
            assert len([p for p in mem.pages() if p.sealed]) >= 4
    store.close()
    return config, conn


@FUZZ
@given(st.lists(OPS, min_size=3, max_size=16))
def test_any_calls_end_in_success_or_a_typed_error_and_keep_the_invariants(grown, ops):
    config, grown = grown
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    grown.backup(conn)
    store = open_store(conn)
    mems = [OpticalMemory(store, config, conversation=name, embedder=HashEmbedder()) for name in ("a", "b")]
    added = [[(t.role, t.text) for t in mem.history()] for mem in mems]
    peaks = [len(turns) for turns in added]
    try:
        for op, conv, *args in ops:
            mem = mems[conv]
            try:
                if op == "add":
                    role, text, ts = args
                    n = mem.add(role, text, timestamp=ts)
                    added[conv].append((role, text.decode() if isinstance(text, bytes) else text))
                    assert n == len(added[conv])
                    peaks[conv] = max(peaks[conv], n)
                elif op == "context":
                    query, budget, system = args
                    ctx = mem.context(query, budget, system=system)
                    assert ctx.positions <= (mem.config.budget if budget is None else budget)
                    recent = [(s.turn_id, s.body) for s in ctx.segments if s.kind == "turn"]
                    newest = list(enumerate((text for _, text in added[conv]), 1))
                    assert recent == newest[len(newest) - len(recent):]
                    assert {s.page for s in ctx.segments if s.kind == "page"} <= {p.number for p in mem.pages()}
                elif op == "recall":
                    query, k = args
                    hits = mem.recall(query, k)
                    assert len(hits) <= k
                    assert {h.page for h in hits} <= {p.number for p in mem.pages() if p.sealed}
                elif op == "pin":
                    mem.pin(*args)
                elif op == "page_image":
                    assert mem.page_image(args[0]).width > 0
                elif op == "page_text":
                    text = mem.page_text(args[0])
                    assert text is None or isinstance(text, str)
                elif op == "read":
                    assert isinstance(mem.pages(), list) and isinstance(mem.history(), list)
                elif op == "pop":
                    turn = mem.pop_turn()
                    assert (turn.id, turn.role, turn.text) == (len(added[conv]), *added[conv].pop())
                elif op == "clear":
                    mem.clear()
                    added[conv], peaks[conv] = [], 0
            except TYPED:
                pass
        for mem, turns, peak in zip(mems, added, peaks):
            _check_invariants(mem, turns, peak)
    finally:
        for mem in mems:
            mem.close()
        store.close()
        conn.close()


def test_a_page_number_past_what_a_store_holds_is_an_invalid_argument():
    with OpticalMemory.open(":memory:", "a", {**CONFIG, "retrieval": {"enabled": False}}) as mem:
        mem.add("user", "hello")
        for call in (mem.page_image, mem.page_text, mem.read_page, lambda n: mem.pin(n, "tiny")):
            with pytest.raises(InvalidArgument, match="page must be an integer"):
                call(2**63)


@settings(max_examples=2, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(WORDS, min_size=6, max_size=10), st.one_of(st.integers(-1, 4), JUNK))
def test_read_page_with_the_onnxruntime_ocr_engine(texts, page):
    with OpticalMemory.open(":memory:", "r", {**CONFIG, "retrieval": {"enabled": False}}) as mem:
        for i, text in enumerate(texts):
            mem.add("user", f"{text} " + "the replica sends row changes at night " * 40, timestamp=i)
        sealed = [p.number for p in mem.pages() if p.sealed]
        assert sealed
        words = set(mem.read_page(sealed[-1]).split())  # the sharpest page reads back
        assert words & set(mem.page_text(sealed[-1]).split())
        try:
            read = mem.read_page(page)
        except TYPED:
            assert page not in sealed or isinstance(page, bool)
            return
        assert page in sealed and isinstance(read, str)


def test_a_schedule_that_starts_at_gundam_seals_pages_of_any_side():
    # Sealing at Gundam (1280 px) once failed with "unknown tier" whenever page_px was not 1280.
    schedule = {"steps": [{"tier": "gundam", "until": 1}, {"tier": "tiny", "until": 9}]}
    with OpticalMemory.open(":memory:", "g", {**CONFIG, "schedule": schedule, "retrieval": {"enabled": False}}) as mem:
        for i in range(8):
            mem.add("user", f"turn {i} " + "the replica sends row changes " * 30, timestamp=i)
        sealed = [p for p in mem.pages() if p.sealed]
        assert len(sealed) >= 3 and sealed[-1].tier == "gundam" and sealed[0].tier == "tiny"
        assert mem.page_image(sealed[-1].number).size == (1280, 1280)
        assert mem.page_image(sealed[0].number).size == (512, 512)
