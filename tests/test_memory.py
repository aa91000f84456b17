"""OpticalMemory end to end on the embedded defaults (retrieval off unless a test needs it)."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from optmem import BudgetError, InvalidTurn, MemoryConfig, OpticalMemory, PinError
from optmem.codec.segments import TextSegment
from optmem.demo import build_conversation
from optmem.memory import MAX_SEALS_PER_ADD
from optmem.store import open_store
from optmem.modes import tier_side
from optmem.tokens import count_tokens
from optmem.store import UnknownConversation
from tests.fakes import HashEmbedder, RecordingEmbedder

NO_RETRIEVAL = {"retrieval": {"enabled": False}}
# These tests are about pages: a small history that fits the budget as text would go in as text.
PAGES_STAY_IMAGES = {"reexpand": {"text_when_it_fits": False}}


def config(**overrides) -> MemoryConfig:
    data = {**NO_RETRIEVAL, **PAGES_STAY_IMAGES, **overrides}
    return MemoryConfig.model_validate(data)


@pytest.fixture(scope="module")
def conversation():
    turns, facts = build_conversation(240, seed=3)
    return turns, facts


def fill(mem, turns, start=0):
    for i, (role, text) in enumerate(turns):
        mem.add(role, text, timestamp=1_700_000_000 + 60 * (start + i))


def test_recent_turns_stay_text_and_older_ones_become_pages(conversation):
    turns, _ = conversation
    with OpticalMemory.open(":memory:", "a", config(recent_turns=6)) as mem:
        fill(mem, turns)
        ctx = mem.context()
        recent = [s for s in ctx.segments if s.kind == "turn"]
        assert [s.turn_id for s in recent] == list(range(235, 241))
        assert [s.body for s in recent] == [t for _, t in turns[-6:]]
        pages = mem.pages()
        sealed = [p for p in pages if p.sealed]
        assert len(sealed) >= 10
        # Pages cover the aged turns contiguously, in order, oldest sealed first.
        assert sealed[0].first_turn == 1
        for a, b in zip(sealed, sealed[1:]):
            assert b.first_turn in (a.last_turn, a.last_turn + 1)
        # Older pages are never sharper than newer ones under the default schedule.
        order = ["gundam", "large", "base", "small", "tiny", None]
        ranks = [order.index(p.tier) for p in sealed]
        assert ranks == sorted(ranks, reverse=True)
        assert {p.tier for p in sealed} >= {"large", "base", "small", "tiny"}
        for p in sealed:
            if p.tier:
                assert p.image_tier == p.tier
            assert mem.page_image(p.number).size == (tier_side(p.image_tier),) * 2


def test_context_positions_are_exact_and_inside_the_budget(conversation):
    turns, _ = conversation
    with OpticalMemory.open(":memory:", "a", config()) as mem:
        fill(mem, turns)
        for budget in (8192, 4000, 2500):
            ctx = mem.context(budget=budget)
            assert ctx.positions <= budget
            # Counted from outside the assembler: BOS, DeepSeek-OCR's vision tokens per page
            # ((side/64)^2, a newline per grid row, one view separator) and the codec's text tokens.
            slots = {"tiny": 73, "small": 111, "base": 273, "large": 421}
            images = sum(slots[s.tier] for s in ctx.segments if s.kind == "page")
            text = sum(count_tokens(seg.text) for seg in ctx.codec_segments() if isinstance(seg, TextSegment))
            assert ctx.positions == 1 + images + text
        tight = mem.context(budget=2500)
        loose = mem.context(budget=8192)
        assert sum(s.kind == "page" for s in tight.segments) < sum(s.kind == "page" for s in loose.segments)


def test_budget_below_the_recent_turns_is_a_clear_error(conversation):
    turns, _ = conversation
    with OpticalMemory.open(":memory:", "a", config(recent_turns=8)) as mem:
        fill(mem, turns[:20])
        with pytest.raises(BudgetError, match="newest 8 turns alone need"):
            mem.context(budget=50)


def test_optical_archive_forgets_text_but_keeps_pages(conversation):
    turns, _ = conversation
    with OpticalMemory.open(":memory:", "a", config(archive="optical")) as mem:
        fill(mem, turns[:120])
        history = mem.history()
        first_open = next(p.first_turn for p in mem.pages() if not p.sealed)
        assert all(t.text is None for t in history[: first_open - 1])
        assert [t.text for t in history[-8:]] == [t for _, t in turns[112:120]]
        assert all(t.role for t in history)  # who spoke when is kept


def test_verbatim_archive_keeps_everything(conversation):
    turns, _ = conversation
    with OpticalMemory.open(":memory:", "a", config()) as mem:
        fill(mem, turns[:120])
        assert [t.text for t in mem.history()] == [t for _, t in turns[:120]]


def test_turn_schedule_and_delete_after_last(conversation):
    turns, _ = conversation
    schedule = {"age_unit": "turns", "steps": [{"tier": "base", "until": 30}, {"tier": "tiny", "until": 60}],
                "after_last": "delete"}
    with OpticalMemory.open(":memory:", "a", config(schedule=schedule)) as mem:
        fill(mem, turns[:150])
        pages = [p for p in mem.pages() if p.sealed]
        newest = 150
        for p in pages:
            age = newest - p.last_turn
            assert p.tier == ("base" if age < 30 else "tiny")
        deleted_up_to = pages[0].first_turn
        assert deleted_up_to > 1
        assert all(t.text is None for t in mem.history()[: deleted_up_to - 2])


def test_an_evicted_page_keeps_its_last_image(conversation):
    turns, _ = conversation
    schedule = {"age_unit": "pages", "steps": [{"tier": "large", "until": 1}, {"tier": "small", "until": 2}]}
    with OpticalMemory.open(":memory:", "a", config(schedule=schedule)) as mem:
        fill(mem, turns[:150])
        sealed = [p for p in mem.pages() if p.sealed]
        assert [p.tier for p in sealed[-2:]] == ["small", "large"]
        assert sealed[0].tier is None and sealed[0].image_tier == "small" and sealed[0].positions == 0
        assert mem.page_image(sealed[0].number).size == (640, 640)
        assert sealed[0].number not in {s.page for s in mem.context().segments if s.kind == "page"}


def test_seconds_schedule_ages_by_conversation_clock():
    schedule = {"age_unit": "seconds", "steps": [{"tier": "large", "until": 3600}, {"tier": "small", "until": 86400}]}
    with OpticalMemory.open(":memory:", "a", config(schedule=schedule, recent_turns=2)) as mem:
        long_turn = "memory " * 1500  # more than a page: seals at once
        mem.add("user", long_turn, timestamp=0)
        mem.add("assistant", "ok", timestamp=10)
        mem.add("user", "later", timestamp=20)
        mem.add("assistant", "ok", timestamp=30)
        assert {p.tier for p in mem.pages() if p.sealed} == {"large"}
        mem.add("user", "two hours later", timestamp=7200)
        assert {p.tier for p in mem.pages() if p.sealed} == {"small"}
        mem.add("user", "two days later", timestamp=2 * 86400)
        assert {p.tier for p in mem.pages() if p.sealed} == {None}


def test_pinned_page_holds_its_tier(conversation):
    turns, _ = conversation
    with OpticalMemory.open(":memory:", "a", config()) as mem:
        fill(mem, turns[:60])
        first = next(p for p in mem.pages() if p.sealed)
        mem.pin(first.number, first.tier)
        fill(mem, turns[60:200], start=60)
        assert next(p for p in mem.pages() if p.number == first.number).tier == first.tier
        later = [p for p in mem.pages() if p.sealed and p.tier == "small"][0]
        with pytest.raises(PinError, match="cannot be pinned at the sharper large"):
            mem.pin(later.number, "large")
        with pytest.raises(PinError, match="unknown tier"):
            mem.pin(later.number, "huge")


def test_pages_are_deterministic_across_runs(conversation):
    turns, _ = conversation

    def snapshot():
        with OpticalMemory.open(":memory:", "a", config()) as mem:
            fill(mem, turns[:100])
            return [(p.number, p.tier, mem.page_image(p.number).tobytes()) for p in mem.pages() if p.sealed]

    assert snapshot() == snapshot()


def test_add_many_stores_what_add_stores_one_by_one(conversation, monkeypatch):
    # add_many() resamples moved pages from the pixels it kept, not the stored PNGs, and embeds
    # the turns that left the recent window BULK_EMBED_TURNS at a time: neither may change a byte.
    import optmem.memory as memory_module

    monkeypatch.setattr(memory_module, "BULK_EMBED_TURNS", 16)
    turns, _ = conversation
    cfg = config(retrieval={"enabled": True}, recent_turns=4)

    def snapshot(mem):
        pages = [(p.number, p.tier, mem.page_image(p.number).tobytes()) for p in mem.pages() if p.sealed]
        return pages, mem._store.turn_vectors(mem._conv)

    with OpticalMemory.open(":memory:", "a", cfg, embedder=HashEmbedder()) as mem:
        fill(mem, turns)
        one_by_one = snapshot(mem)
    embedder = RecordingEmbedder()
    with OpticalMemory.open(":memory:", "a", cfg, embedder=embedder) as mem:
        mem.add_many((role, text, 1_700_000_000 + 60 * i) for i, (role, text) in enumerate(turns))
        bulk = snapshot(mem)
        assert mem.index_work().empty
    assert len({tier for _, tier, _ in bulk[0]}) >= 3  # pages moved down the schedule
    assert bulk[0] == one_by_one[0]
    assert np.array_equal(bulk[1][0], one_by_one[1][0]) and np.allclose(bulk[1][1], one_by_one[1][1])
    # Every 16 turns, those that left the 4-turn recent window (one part each: these turns are short).
    assert [len(c) for c in embedder.calls if c] == [16 - 4] + [16] * (len(turns) // 16 - 1)


def test_a_move_never_resamples_the_kept_pixels_of_another_page_of_that_number(conversation):
    # A page number comes back once every page was evicted, maybe by another instance: the kept
    # pixels are keyed by the page's last turn too, so the new page's moves decode its own image.
    from PIL import Image

    import optmem.memory as memory_module

    turns, _ = conversation
    with OpticalMemory.open(":memory:", "a", config()) as mem:
        fill(mem, turns[:120])
        honest = [(p.number, p.tier, mem.page_image(p.number).tobytes()) for p in mem.pages() if p.sealed]
    with OpticalMemory.open(":memory:", "a", config()) as mem:
        fill(mem, turns[:60])
        mem._pixels._max = 1 << 40  # keep every planted image
        for row in mem._store.pages(mem._conv):  # black pixels of pages that ended on other turns
            key = memory_module.pixels_key(mem._conv, row.number, row.last_turn + 1000, row.image_tier)
            side = tier_side(row.image_tier)
            mem._pixels.put(key, Image.new("L", (side, side), 0))
        fill(mem, turns[60:120], start=60)
        assert [(p.number, p.tier, mem.page_image(p.number).tobytes()) for p in mem.pages() if p.sealed] == honest


def test_conversations_are_isolated(tmp_path, conversation):
    turns, _ = conversation
    path = tmp_path / "m.db"
    with OpticalMemory.open(path, "alice", config()) as alice:
        fill(alice, turns[:80])
        alice_pages = [p.number for p in alice.pages() if p.sealed]
    with OpticalMemory.open(path, "bob", config()) as bob:
        bob.add("user", "hello from bob")
        assert [t.text for t in bob.history()] == ["hello from bob"]
        assert bob.pages() == []
        assert all(s.kind == "turn" for s in bob.context().segments)
        for pid in alice_pages:
            with pytest.raises(KeyError):
                bob.page_image(pid)
            with pytest.raises(KeyError):
                bob.pin(pid, None)


def test_unknown_conversation_without_create(tmp_path):
    path = tmp_path / "m.db"
    OpticalMemory.open(path, "alice").close()
    with pytest.raises(UnknownConversation, match="nobody"):
        OpticalMemory.open(path, "nobody", create=False)


@pytest.mark.parametrize("role, text, match", [
    ("robot", "hi", "role must be one of"),
    ("user", b"\xff\xfe bad", "not valid UTF-8"),
    ("user", 42, "must be str"),
])
def test_bad_turns_are_rejected_and_nothing_is_written(role, text, match):
    with OpticalMemory.open(":memory:", "a", config()) as mem:
        mem.add("user", "first")
        with pytest.raises(InvalidTurn, match=match):
            mem.add(role, text)
        assert [t.text for t in mem.history()] == ["first"]


def test_empty_utf8_bytes_and_oversized_turns():
    with OpticalMemory.open(":memory:", "a", config(max_turn_chars=1000)) as mem:
        assert mem.add("user", "") == 1
        assert mem.add("user", "héllo".encode()) == 2
        with pytest.raises(InvalidTurn, match="max_turn_chars=1000"):
            mem.add("user", "x" * 1001)
        with pytest.raises(InvalidTurn, match="timestamp"):
            mem.add("user", "x", timestamp=float("nan"))
        assert [t.text for t in mem.history()] == ["", "héllo"]


def test_huge_turn_spans_many_pages_and_exact_text_survives():
    text = " ".join(f"word{i}" for i in range(40_000))  # ~270 kB, dozens of pages
    with OpticalMemory.open(":memory:", "a", config(recent_turns=1)) as mem:
        mem.add("user", text)
        mem.add("assistant", "noted")
        # One add seals a bounded number of pages; flush() seals the rest now.
        assert sum(p.sealed for p in mem.pages()) == MAX_SEALS_PER_ADD
        mem.flush()
        sealed = [p for p in mem.pages() if p.sealed]
        assert len(sealed) > 20
        assert all(p.first_turn == p.last_turn == 1 for p in sealed)
        source = "".join(mem.page_text(p.number) for p in sealed)
        assert "word0 " in source and "word39000" in source


def test_context_messages_carry_page_images(conversation):
    turns, _ = conversation
    with OpticalMemory.open(":memory:", "a", config()) as mem:
        fill(mem, turns[:60])
        ctx = mem.context()
        messages = ctx.to_messages()
        images = [p for p in messages[0]["content"] if p["type"] == "image_url"]
        assert len(images) == sum(s.kind == "page" for s in ctx.segments) > 0
        page = next(s for s in ctx.segments if s.kind == "page")
        assert page.load_image().size == (tier_side(page.tier),) * 2
        assert "user:" in ctx.to_text()


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["user", "assistant"]), st.text(max_size=400)), min_size=1, max_size=40),
       st.integers(0, 3000), st.integers(0, 4))
def test_any_adds_any_budget_stay_inside_the_budget(adds, extra, k):
    with OpticalMemory.open(":memory:", "p", config(recent_turns=k)) as mem:
        for role, text in adds:
            mem.add(role, text, timestamp=0)
        minimum = 1 + sum(s.positions for s in mem.context(budget=10**6).segments if s.kind == "turn")
        ctx = mem.context(budget=minimum + extra)
        assert ctx.positions <= minimum + extra


KILLED_WRITER = """
import sys
from optmem import OpticalMemory, MemoryConfig
from optmem.demo import build_conversation
turns, _ = build_conversation(3000, seed=11)
cfg = MemoryConfig.model_validate({"retrieval": {"enabled": False}, "recent_turns": 2})
with OpticalMemory.open(sys.argv[1], "crash", cfg) as mem:
    print("ready", flush=True)
    for i, (role, text) in enumerate(turns):
        mem.add(role, text, timestamp=i)
"""


def test_a_killed_writer_leaves_a_consistent_database(tmp_path):
    path = str(tmp_path / "crash.db")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, path], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(4.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with OpticalMemory.open(path, "crash", config(recent_turns=2)) as mem:
        history = mem.history()
        assert len(history) > 20
        assert [t.id for t in history] == list(range(1, len(history) + 1))
        pages = [p for p in mem.pages() if p.sealed]
        assert pages
        for p in pages:
            image = mem.page_image(p.number)  # hash-checked: no torn blob
            assert image.size == (tier_side(p.image_tier),) * 2
            assert p.tier is None or p.tier == p.image_tier
        open_page = [p for p in mem.pages() if not p.sealed]
        assert not open_page or open_page[0].first_turn in (pages[-1].last_turn, pages[-1].last_turn + 1)
        n = len(history)
        mem.add("user", "still works")  # and the memory goes on from there
        assert mem.history()[-1].id == n + 1


SHARED_WRITER = """
import sys
from optmem import OpticalMemory, MemoryConfig
cfg = MemoryConfig.model_validate({"retrieval": {"enabled": False}, "recent_turns": 3})
with OpticalMemory.open(sys.argv[1], "shared", cfg) as mem:
    for i in range(60):
        mem.add("user", f"{sys.argv[2]} says line {i}: " + "a fairly long sentence about nothing in particular " * 4)
"""


def test_several_processes_share_one_conversation(tmp_path):
    path = str(tmp_path / "shared.db")
    OpticalMemory.open(path, "shared", config()).close()
    procs = [subprocess.Popen([sys.executable, "-c", SHARED_WRITER, path, name]) for name in ("p", "q", "r")]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    with OpticalMemory.open(path, "shared", config(recent_turns=3)) as mem:
        history = mem.history()
        assert len(history) == 180 and [t.id for t in history] == list(range(1, 181))
        for name in "pqr":
            lines = [t.text for t in history if t.text.startswith(f"{name} says")]
            assert [int(x.split("line ")[1].split(":")[0]) for x in lines] == list(range(60))
        pages = mem.pages()
        sealed = [p for p in pages if p.sealed]
        assert sealed[0].first_turn == 1
        for a, b in zip(pages, pages[1:]):  # contiguous cover, no turn packed twice
            assert b.first_turn in (a.last_turn, a.last_turn + 1)
        assert pages[-1].last_turn == 180 - 3
        rows = sealed
        for a, b in zip(rows, rows[1:]):  # a turn split across pages continues at the exact character
            if b.first_turn == a.last_turn:
                assert b.first_char == a.last_char > 0
            else:
                assert b.first_char == 0 and a.last_char == len(history[a.last_turn - 1].text)


def test_page_ages_stay_right_after_old_pages_are_deleted(conversation):
    turns, _ = conversation
    schedule = {"age_unit": "pages", "steps": [{"tier": "large", "until": 2}, {"tier": "tiny", "until": 4}],
                "after_last": "delete"}
    with OpticalMemory.open(":memory:", "a", config(schedule=schedule)) as mem:
        fill(mem, turns[:200])
        sealed = [p for p in mem.pages() if p.sealed]
        assert [p.tier for p in sealed] == ["tiny", "tiny", "large", "large"]
        assert [p.age for p in sealed] == [3, 2, 1, 0]


class _FailingStore:
    """A store whose tier moves fail once armed: a write that dies half way through."""

    def __init__(self, store):
        self._store = store
        self.armed = False

    def __getattr__(self, name):
        return getattr(self._store, name)

    def set_page_tier(self, *args, **kwargs):
        if self.armed:
            raise RuntimeError("disk full")
        return self._store.set_page_tier(*args, **kwargs)


def test_a_failed_add_leaves_no_trace(conversation):
    turns, _ = conversation
    store = _FailingStore(open_store(":memory:"))
    with OpticalMemory(store, config(), conversation="a") as mem:
        fill(mem, turns[:40])
        store.armed = True
        with pytest.raises(RuntimeError, match="disk full"):
            fill(mem, turns[40:80], start=40)  # one of these seals a page, which moves the others
        store.armed = False
        history, pages = mem.history(), mem.pages()
        assert [t.text for t in history] == [text for _, text in turns[:len(history)]]  # the failed turn is not there
        assert 40 <= len(history) < 80
        fill(mem, turns[len(history):80], start=len(history))  # and the memory goes on from where it was
        pages = mem.pages()
        assert len(mem.history()) == 80
        for a, b in zip(pages, pages[1:]):
            assert b.first_turn in (a.last_turn, a.last_turn + 1)


def test_chunk_spans_whole_turns_and_excerpt_turns():
    from optmem.excerpts import excerpt_turns, whole_turns
    from optmem.retrieval import chunk_spans, chunk_text

    page = ("user · #7 · 2024-01-01 10:00 UTC (continued)\nend of seven.\n\n"
            "assistant · #8 · 2024-01-01 10:01 UTC\n" + "word " * 60 + "the port is 8374.\n\n"
            "user · #9 · 2024-01-01 10:02 UTC\nthanks\n\nassistant · #99 · misread\nok")
    spans = chunk_spans(page, 100)
    assert [page[a:b] for a, b in spans] == chunk_text(page, 100)
    assert all(not page[a].isspace() and not page[b - 1].isspace() for a, b in spans)
    inside = page.index("word word") + 20
    start, end = whole_turns(page, inside, inside + 30, limit=1000)
    assert page[start:end].startswith("assistant · #8") and page[start:end].endswith("the port is 8374.")
    start, end = whole_turns(page, inside, inside + 30, limit=100)  # too long a turn: widened evenly
    assert end - start <= 100 and start <= inside and end >= inside + 30
    assert excerpt_turns(page, page.index("end of"), page.index("thanks") + 3, 7, 10) == (7, 9)
    assert excerpt_turns(page, page.index("ok"), len(page), 7, 10) == (9, 9)  # "#99" is no turn of the page


@pytest.mark.parametrize("model", ["deepseek-ocr", "text"])
def test_without_embedding_at_query_a_query_searches_what_index_embedded(model):
    class Counting(HashEmbedder):
        texts = 0

        def encode(self, texts):
            Counting.texts += len(texts)
            return super().encode(texts)

    config = {"model": model, "recent_turns": 2, "budget": 2000, "reexpand": {"text_when_it_fits": False},
              "retrieval": {"embed_on_seal": False, "embed_on_query": False, "min_score": 0.0}}
    with OpticalMemory.open(":memory:", config=config, embedder=Counting()) as mem:
        for i in range(40):
            topic = "the harbour lighthouse keeper named Oswin" if i == 3 else f"filler topic {i}"
            mem.add("user", f"Turn {i} is about {topic}. " + "lorem ipsum dolor sit amet " * 12)
        assert mem.pages() and Counting.texts == 0
        mem.context("who keeps the lighthouse?")
        assert Counting.texts == 0  # nothing is embedded, so there is nothing to search, not even the query
        mem.index()
        embedded = Counting.texts
        assert embedded > 1
        if model == "text":
            found = mem.context("the lighthouse keeper Oswin", budget=600).to_text()
        else:
            found = " ".join(r.text for r in mem.recall("who keeps the lighthouse? Oswin", k=1))
        assert "Oswin" in found
        mem.index()
        assert Counting.texts == embedded + 1  # the query; the second index() had nothing left to embed


def test_tier_moves_left_for_settle_end_where_moves_in_the_write_do():
    from optmem.demo import build_conversation

    turns, _ = build_conversation(90, seed=5)
    steps = [{"tier": "large", "until": 1}, {"tier": "base", "until": 2}, {"tier": "tiny", "until": 4}]

    def memory(tier_moves):
        cfg = MemoryConfig.model_validate({"retrieval": {"enabled": False}, "tier_moves": tier_moves,
                                           "schedule": {"steps": steps}})
        return OpticalMemory.open(":memory:", "c", cfg)

    def tiers(mem):
        return [(p.number, p.tier, p.image_tier, mem.page_image(p.number).size) for p in mem.pages() if p.sealed]

    with memory("on_write") as eager, memory("later") as lazy:
        moved = 0
        for i, (role, text) in enumerate(turns):
            eager.add(role, text, timestamp=1_700_000_000 + 60 * i)
            lazy.add(role, text, timestamp=1_700_000_000 + 60 * i)
            if tiers(lazy) != tiers(eager):  # the write left the moves: settle() makes them, as optmem serve does
                moved += lazy.settle()
            assert tiers(lazy) == tiers(eager)
        assert moved > 0 and len(tiers(eager)) >= 5
        for number, *_ in tiers(eager):
            assert lazy.page_image(number).tobytes() == eager.page_image(number).tobytes()
        assert lazy.settle() == 0  # nothing is due any more


def test_warm_up_loads_the_embedder_and_the_index_and_stores_nothing():
    from fakes import HashEmbedder

    from optmem.demo import build_conversation

    encoded = []

    class Recording(HashEmbedder):
        def encode(self, texts):
            encoded.append(list(texts))
            return super().encode(texts)

    turns, _ = build_conversation(60, seed=4)
    for unit in ("turns", "page"):  # what a query searches: the turn vectors, or the pages' faiss index
        with OpticalMemory.open(":memory:", "c", {"reexpand": {"unit": unit}}, embedder=Recording()) as mem:
            for i, (role, text) in enumerate(turns):
                mem.add(role, text, timestamp=1_700_000_000 + 60 * i)
            mem._retriever = None  # as in a fresh process: no index in memory yet
            before = (mem._store.last_turn(mem._conv), [p.number for p in mem.pages()])
            encoded.clear()
            mem.warm_up()
            assert ["warm up"] in encoded
            retriever = mem._retriever
            if unit == "turns":
                stored = mem._store.turn_vectors(mem._conv)[0]
                assert retriever._turns is not None and len(stored) and np.array_equal(retriever._turns[1], stored)
                # The memory turns' lines are priced too, so a query after a restart does not count them.
                from optmem.turn_units import turn_line

                mem.reader._long_count._kept.clear()
                mem.warm_up()
                kept = len(mem.reader._long_count._kept)
                for turn in mem._store.turns(mem._conv, 1, int(stored.max())):
                    mem.reader.cost(turn_line(turn) + "\n")
                assert len(mem.reader._long_count._kept) == kept > 0  # none of them was new
            else:
                assert retriever._index is not None and len(retriever._index) == mem._store.embedding_count(mem._conv)
            assert (mem._store.last_turn(mem._conv), [p.number for p in mem.pages()]) == before
    with OpticalMemory.open(":memory:", "c", {"retrieval": {"enabled": False}}) as mem:
        mem.warm_up()  # no retrieval: the tokenizers and fonts only
        assert mem._retriever is None and mem._store.last_turn(mem._conv) == 0
