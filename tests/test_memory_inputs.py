"""Bad arguments at the memory's boundary get optmem's own typed errors (issue 12, items 1, 2, 4)."""

import numpy as np
import pytest

from optmem import InvalidArgument, InvalidTurn, OpticalMemory
from optmem.store import open_store

NO_RETRIEVAL = {"recent_turns": 2, "retrieval": {"enabled": False}}
SMALL_PAGES = {"recent_turns": 2, "render": {"page_px": 512, "font_px": 12}}


@pytest.mark.parametrize("ts", [1e12, 2.6e11, -6.3e10, 1e300, -1e300, 10**400, float("nan"), float("inf"), True, "2024"])
def test_a_timestamp_outside_the_calendar_is_refused_at_add(ts):
    with OpticalMemory.open(":memory:", "a", NO_RETRIEVAL) as mem:
        with pytest.raises(InvalidTurn, match="timestamp must be .* between"):
            mem.add("user", "hello", timestamp=ts)
        assert mem.history() == []


def test_timestamps_at_the_ends_of_the_calendar_are_kept_and_paged():
    with OpticalMemory.open(":memory:", "a", NO_RETRIEVAL) as mem:
        mem.add("user", "first", timestamp=-62135596800)  # 0001-01-01
        mem.add("user", "last", timestamp=253402300799)  # 9999-12-31 23:59:59
        for i in range(6):
            mem.add("assistant", "more words " * 200, timestamp=1_700_000_000 + i)
        assert len(mem.history()) == 8 and mem.context().positions > 0


def test_a_stored_timestamp_outside_the_calendar_never_breaks_packing():
    # A row written by an older optmem that did not check (or edited by hand) still pages.
    store = open_store(":memory:")
    conv = store.conversation_id("a", create=True)
    with store.write():
        store.add_turn(conv, "user", "from the far future", 1e12)
    with OpticalMemory(store, NO_RETRIEVAL, conversation="a") as mem:
        for i in range(40):
            mem.add("assistant", "filler text " * 120, timestamp=1_700_000_000 + i)
        assert any(p.sealed for p in mem.pages())
        assert "far future" in mem.page_text(1)


def test_budget_takes_integers_of_any_kind_but_not_bools_or_floats():
    with OpticalMemory.open(":memory:", "a", NO_RETRIEVAL) as mem:
        mem.add("user", "hi")
        assert mem.context(budget=np.int64(5000)).budget == 5000
        for bad in (True, 5000.0, "5000", 0, -3):
            with pytest.raises(InvalidArgument, match="budget must be an integer >= 1"):
                mem.context(budget=bad)


@pytest.mark.parametrize("retrieval", [False, True])
@pytest.mark.parametrize("query", [b"bytes query", 123, ["a list"], "lone \ud800 surrogate"])
def test_a_query_that_is_not_text_is_refused_naming_the_argument(retrieval, query):
    with OpticalMemory.open(":memory:", "a", {"recent_turns": 2, "retrieval": {"enabled": retrieval}}) as mem:
        mem.add("user", "hi")
        with pytest.raises(InvalidArgument, match="query"):
            mem.context(query=query)
        if retrieval:
            with pytest.raises(InvalidArgument, match="query"):
                mem.recall(query)


def test_a_lone_surrogate_in_a_turn_is_an_invalid_turn():
    with OpticalMemory.open(":memory:", "a", NO_RETRIEVAL) as mem:
        with pytest.raises(InvalidTurn, match="lone surrogate"):
            mem.add("user", "bad \udc80 text")
        assert mem.history() == []


@pytest.mark.parametrize("k, message", [(-1, "got -1"), (0, "got 0"), (2.5, "got 2.5"), (None, "got None"), (True, "got True")])
def test_recall_k_is_checked(k, message):
    with OpticalMemory.open(":memory:", "a", {"recent_turns": 2}) as mem:
        with pytest.raises(InvalidArgument, match=f"k must be an integer >= 1, {message}"):
            mem.recall("anything", k=k)


def test_a_corrupt_stored_vector_index_is_rebuilt_from_the_stored_vectors(tmp_path):
    path = tmp_path / "m.db"
    config = {**SMALL_PAGES, "reexpand": {"unit": "page"}}  # the unit whose queries search page vectors
    with OpticalMemory.open(path, "a", config) as mem:
        for i in range(30):
            mem.add("user" if i % 2 else "assistant", f"turn {i}: the door code for room {i} is {4000 + i}. " * 8,
                    timestamp=1_700_000_000 + i)
        before = [h.page for h in mem.recall("door code for room 3", k=2)]
    store = open_store(path)
    conv = store.conversation_id("a", create=False)
    n = store.vector_index(conv)[0]
    store.put_vector_index(conv, n, b"\x00garbage, not a faiss index")
    store.close()
    with OpticalMemory.open(path, "a", config) as mem:
        assert [h.page for h in mem.recall("door code for room 3", k=2)] == before
    store = open_store(path)
    assert store.vector_index(store.conversation_id("a", create=False))[1] != b"\x00garbage, not a faiss index"


def test_a_read_only_memory_reads_and_searches_but_never_writes(tmp_path):
    from optmem.store import ReadOnlyStore

    path = tmp_path / "m.db"
    with OpticalMemory.open(path, "a", SMALL_PAGES) as mem:
        for i in range(30):
            mem.add("user", f"turn {i}: the locker code for room {i} is {7000 + i}. " * 8, timestamp=1_700_000_000 + i)
        hits = [h.page for h in mem.recall("locker code for room 5", k=2)]
    before = path.read_bytes()
    with OpticalMemory.open(path, "a", SMALL_PAGES, readonly=True) as mem:
        assert len(mem.history()) == 30 and [h.page for h in mem.recall("locker code for room 5", k=2)] == hits
        assert mem.context(query="locker code for room 5").positions > 0
        with pytest.raises(ReadOnlyStore):
            mem.add("user", "no")
    assert path.read_bytes() == before


def test_pages_go_out_in_fewer_greys_while_the_store_keeps_them_lossless(tmp_path):
    from renderers import decode_page_image

    config = {"recent_turns": 2, "retrieval": {"enabled": False}, "reexpand": {"text_when_it_fits": False}}
    with OpticalMemory.open(tmp_path / "m.db", "a", config) as mem:
        for i in range(40):
            mem.add("user", f"turn {i}: " + "the quick brown fox jumps over the lazy dog " * 12, timestamp=1_700_000_000 + i)
        ctx = mem.context()
        pages = [s for s in ctx.segments if s.kind == "page" and s.page <= mem.pages()[-1].number - 1]
        assert pages
        for s in pages:
            sent = decode_page_image(s.load_png())
            stored = mem.page_image(s.page)
            assert sent.size == (s.side, s.side)
            assert len(set(sent.getdata())) <= 16 < len(set(stored.getdata()))  # quantised out, 8-bit kept


def test_a_text_reader_gets_memory_as_text_filling_the_budget():
    cfg = {"model": "text", "recent_turns": 2, "retrieval": {"enabled": False}}
    with OpticalMemory.open(":memory:", "a", cfg) as mem:
        for i in range(60):
            mem.add("user" if i % 2 else "assistant", f"turn {i}: note {1000 + i} " + "and more words " * 40,
                    timestamp=1_700_000_000 + i)
        for budget in (2000, 6000, 100_000):
            ctx = mem.context(budget=budget)
            assert ctx.positions <= budget and not any(s.kind == "page" for s in ctx.segments)
            text = ctx.to_text()
            assert "note 1059" in text  # the newest turns
            if budget == 100_000:  # everything fits: every turn is there, as text
                assert all(f"note {1000 + i}" in text for i in range(60))
            else:
                assert ctx.positions > 0.8 * budget  # no idle budget
        messages = mem.context(budget=6000).to_messages()
        assert all(p["type"] == "text" for m in messages if isinstance(m["content"], list) for p in m["content"])
