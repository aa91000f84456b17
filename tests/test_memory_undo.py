"""OpticalMemory.pop_turn and OpticalMemory.clear: what they remove, what they refuse, and that
the memory object goes on as if the removed turns had never been added."""


import pytest

from optmem import OpticalMemory
from optmem.store import NoTurnToPop, ReadOnlyStore, TurnOnSealedPage
from tests.fakes import HashEmbedder

SMALL = {"render": {"page_px": 512, "font_px": 14}, "retrieval": {"enabled": False},
         "schedule": {"steps": [{"tier": "large", "until": 1}, {"tier": "base", "until": 2},
                                {"tier": "small", "until": 3}, {"tier": "tiny", "until": 5}]}}


def cfg(**overrides):
    return {**SMALL, **overrides}


def turn(i: int, word: str = "replica") -> tuple[str, str]:
    return ("user" if i % 2 else "assistant"), f"turn {i}: the {word} sends row changes " * 12


def add(mem, turns, start=0):
    for i, (role, text) in enumerate(turns):
        mem.add(role, text, timestamp=1_000 + start + i)


def snapshot(mem):
    """Everything a reader of the memory sees: pages with their stored images, and the context's
    segments with the bytes of every page image it sends."""
    pages = [(p, mem.page_image(p.number).tobytes() if p.sealed else None) for p in mem.pages()]
    ctx = mem.context()
    segments = [(s.kind, getattr(s, "page", None), getattr(s, "tier", None), s.positions,
                 s.load_png() if s.kind == "page" else getattr(s, "text", None)) for s in ctx.segments]
    return [(p.number, p.first_turn, p.last_turn, p.tier, p.sealed, img) for p, img in pages], segments, ctx.positions


@pytest.mark.parametrize("recent", [3, 0])
def test_add_pop_add_is_the_same_memory_as_the_second_add(recent):
    """An undone turn leaves nothing: not in the store, not in the open page's drawing, its
    layout or the sent-image cache (the next turn takes its number and its place)."""
    turns = [turn(i) for i in range(14)]
    with OpticalMemory.open(":memory:", "a", cfg(recent_turns=recent)) as undone, \
            OpticalMemory.open(":memory:", "a", cfg(recent_turns=recent)) as straight:
        add(undone, turns[:13])
        add(straight, turns[:13])
        assert [p.sealed for p in undone.pages()].count(False) == 1  # an open page, drawn below
        snapshot(undone)  # draws and caches the open page and the images sent
        undone.add("user", "oops, not this", timestamp=2_000)
        snapshot(undone)
        popped = undone.pop_turn()
        assert (popped.id, popped.role, popped.text) == (14, "user", "oops, not this")
        assert [(t.id, t.text) for t in undone.history()] == [(t.id, t.text) for t in straight.history()]
        add(undone, turns[13:], start=13)
        add(straight, turns[13:], start=13)
        assert snapshot(undone) == snapshot(straight)


def test_a_turn_on_a_sealed_page_is_refused_and_nothing_changes():
    with OpticalMemory.open(":memory:", "a", cfg(recent_turns=0)) as mem:
        add(mem, [turn(i) for i in range(4)])
        i = mem.add("user", "a long turn that runs over the page end " * 60, timestamp=99)
        assert any(p.sealed and p.last_turn == i and p.last_char < 2400 for p in mem.pages())
        before = (mem.history(), snapshot(mem))
        with pytest.raises(TurnOnSealedPage, match=f"turn {i} is on sealed page"):
            mem.pop_turn()
        assert (mem.history(), snapshot(mem)) == before


def test_pops_reach_back_to_the_sealed_pages_then_stop():
    with OpticalMemory.open(":memory:", "a", cfg(recent_turns=2)) as mem:
        add(mem, [turn(i) for i in range(12)])
        sealed_through = max(p.last_turn for p in mem.pages() if p.sealed)
        while mem.history()[-1].id > sealed_through:
            newest = mem.history()[-1]
            assert mem.pop_turn() == newest
            # the recent window reaches back; a turn also on a page may show twice, never with no text
            assert all(s.body for s in mem.context().segments if s.kind == "turn")
        with pytest.raises(TurnOnSealedPage):
            mem.pop_turn()
        assert mem.history()[-1].id == sealed_through


def test_popping_an_empty_conversation_is_a_typed_error():
    with OpticalMemory.open(":memory:", "a", cfg()) as mem:
        with pytest.raises(NoTurnToPop, match="'a' has no turn to pop"):
            mem.pop_turn()
        mem.add("user", "only")
        assert mem.pop_turn().text == "only"
        with pytest.raises(NoTurnToPop):
            mem.pop_turn()
        assert mem.add("user", "again") == 1


def test_an_optical_archive_s_window_never_shows_a_turn_without_its_text():
    with OpticalMemory.open(":memory:", "a", cfg(recent_turns=2, archive="optical")) as mem:
        add(mem, [turn(i) for i in range(12)])
        textless_in_window = False
        while True:
            try:
                mem.pop_turn()
            except TurnOnSealedPage:
                break
            window = mem.history()[-2:]
            textless_in_window |= any(t.text is None for t in window)
            # a turn the optical archive dropped is in the window's reach, but only on its page
            assert [s.turn_id for s in mem.context().segments if s.kind == "turn"] == \
                [t.id for t in window if t.text is not None]
        assert textless_in_window


def recalls(mem, query):
    return [(r.page, round(r.score, 5), r.text) for r in mem.recall(query, k=5)]


@pytest.mark.parametrize("cleared", ["a", "b"])  # b is the newest: SQLite gives its id to the new, empty b
def test_clear_forgets_one_conversation_and_the_memory_goes_on(tmp_path, cleared):
    db = tmp_path / "m.db"
    config = cfg(recent_turns=2, retrieval={"enabled": True})
    old, new = [turn(i, "lighthouse") for i in range(12)], [turn(i, "harbour") for i in range(12)]
    with OpticalMemory.open(db, "a", config, embedder=HashEmbedder()) as first, \
            OpticalMemory.open(db, "b", config, embedder=HashEmbedder()) as second:
        b, a = (first, second) if cleared == "a" else (second, first)  # b is cleared, a is not
        add(a, old)
        add(b, old)
        assert recalls(a, "lighthouse") and recalls(b, "lighthouse")  # both retrievers hold an index
        b.context()  # draws and caches b's open page
        a_before = (a.history(), snapshot(a), recalls(a, "lighthouse"))

        b.clear()
        assert b.history() == [] and b.pages() == [] and b.recall("lighthouse", k=3) == []
        assert [s.kind for s in b.context().segments] == []
        assert (a.history(), snapshot(a), recalls(a, "lighthouse")) == a_before

        # It goes on from turn 1 and page 1, nothing of the old pages in its pages or retrieval.
        add(b, new)
        b_now = (b.history(), snapshot(b), recalls(b, "lighthouse"), recalls(b, "harbour"))
        assert b_now[0][0].id == 1 and min(p.number for p in b.pages()) == 1 and b_now[3]
    with OpticalMemory.open(tmp_path / "fresh.db", cleared, config, embedder=HashEmbedder()) as fresh:
        add(fresh, new)
        assert (fresh.history(), snapshot(fresh), recalls(fresh, "lighthouse"), recalls(fresh, "harbour")) == b_now
    with OpticalMemory.open(db, cleared, config, embedder=HashEmbedder()) as again:
        assert [t.text for t in again.history()] == [text for _, text in new]
        assert recalls(again, "harbour") == b_now[3]


def test_a_read_only_memory_neither_pops_nor_clears(tmp_path):
    db = tmp_path / "m.db"
    with OpticalMemory.open(db, "a", cfg()) as mem:
        mem.add("user", "kept")
    with OpticalMemory.open(db, "a", cfg(), readonly=True) as mem:
        with pytest.raises(ReadOnlyStore):
            mem.pop_turn()
        with pytest.raises(ReadOnlyStore):
            mem.clear()
        assert [t.text for t in mem.history()] == ["kept"]
