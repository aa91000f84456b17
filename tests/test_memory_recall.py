"""Retrieval and re-expansion through OpticalMemory, with the real MiniLM and PP-OCRv6 models."""

import sqlite3

import pytest
from pydantic import ValidationError

from optmem import MemoryConfig, OpticalMemory
from optmem.bench.scoring import cer
from optmem.demo import build_conversation
from renderers import Tier

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def conversation():
    return build_conversation(160, seed=7)


def fill(mem, turns):
    for i, (role, text) in enumerate(turns):
        mem.add(role, text, timestamp=1_700_000_000 + 60 * i)


@pytest.fixture(scope="module")
def verbatim(conversation):
    with OpticalMemory.open(":memory:", "a") as mem:
        fill(mem, conversation[0])
        yield mem


def test_recall_finds_buried_facts_verbatim(conversation, verbatim):
    _, facts = conversation
    found = 0
    for _, fact in facts:
        hits = verbatim.recall(fact.question, k=3)
        assert all(h.source == "verbatim" for h in hits)
        found += any(fact.answer in h.text for h in hits)
    assert found >= len(facts) - 1


def test_context_with_a_query_re_expands_the_page_inside_the_budget(conversation, verbatim):
    _, facts = conversation
    _, fact = facts[0]
    ctx = verbatim.context(query=fact.question, budget=6000)
    assert ctx.positions <= 6000
    expanded = [s for s in ctx.segments if s.kind == "expanded"]
    assert expanded and any(fact.answer in s.body for s in expanded)
    assert fact.answer in ctx.to_text()
    # the expanded page's image is not also in the context
    assert not set(ctx.expanded_pages()) & set(ctx.page_tiers())


def test_optical_archive_re_expands_by_reading_the_blurred_page(conversation, verbatim):
    turns, facts = conversation
    with OpticalMemory.open(":memory:", "a", MemoryConfig(archive="optical")) as mem:
        fill(mem, turns)
        hits = mem.recall(facts[0][1].question, k=1)
        page = next(p for p in mem.pages() if p.number == hits[0].page)
        assert hits[0].source == "ocr" and page.tier in ("small", "tiny")
        # The verbatim twin renders the same pages: OCR of the blurred page must read what it holds.
        source = verbatim.page_text(page.number)
        assert cer(source, hits[0].text) < 0.03
        assert mem.read_page(page.number) == hits[0].text  # the cached read
        assert mem.history()[0].text is None  # the text itself is gone


def test_reading_a_tiny_page_recovers_exact_ids():
    needle = "The vault id is 7f3c9e2a-41d0-4b8e-9c11-5a2b3c4d5e6f and the PIN is 480162."
    filler = [("user" if i % 2 == 0 else "assistant", f"Sentence number {i} about gardening, tomatoes and compost.")
              for i in range(60)]
    cfg = MemoryConfig.model_validate({"archive": "optical", "recent_turns": 2,
                                       "schedule": {"steps": [{"tier": "tiny", "until": 100}]}})
    with OpticalMemory.open(":memory:", "a", cfg) as mem:
        mem.add("user", needle, timestamp=0)
        fill(mem, filler)
        first = next(p for p in mem.pages() if p.sealed)
        assert first.tier == "tiny"
        text = mem.read_page(first.number)
        assert "7f3c9e2a-41d0-4b8e-9c11-5a2b3c4d5e6f" in text and "480162" in text
        assert cer(needle, text[: len(needle) + 40][text.find("The vault"):][: len(needle)]) < 0.02


def test_index_is_persisted_and_rebuilt_when_missing(tmp_path, conversation):
    turns, facts = conversation
    path = tmp_path / "m.db"
    pages = MemoryConfig.model_validate({"reexpand": {"unit": "page"}})  # the unit that searches page vectors
    with OpticalMemory.open(path, "a", pages) as mem:
        fill(mem, turns[:120])
        before = [h.page for h in mem.recall(facts[0][1].question, k=3)]
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM vector_indexes").fetchone()[0] == 1
    with OpticalMemory.open(path, "a", pages) as mem:
        assert [h.page for h in mem.recall(facts[0][1].question, k=3)] == before
    with sqlite3.connect(path) as raw:
        raw.execute("DELETE FROM vector_indexes")
    with OpticalMemory.open(path, "a", pages) as mem:
        assert [h.page for h in mem.recall(facts[0][1].question, k=3)] == before


def test_recall_never_crosses_conversations(tmp_path, conversation):
    turns, facts = conversation
    path = tmp_path / "m.db"
    with OpticalMemory.open(path, "alice") as alice:
        fill(alice, turns)
        alice_texts = {alice.page_text(p.number) for p in alice.pages() if p.sealed}
    with OpticalMemory.open(path, "bob") as bob:
        fill(bob, [("user", "I only talk about chess openings and endgames.")] * 40)
        for _, fact in facts:
            for hit in bob.recall(fact.question, k=5):  # page numbers are per conversation: compare texts
                assert hit.text not in alice_texts and fact.answer not in hit.text


def _excerpt_memory(archive: str, **reexpand):
    return MemoryConfig.model_validate({"archive": archive,
                                        "reexpand": {"unit": "excerpt", "max_excerpts": 3, **reexpand}})


def test_excerpts_put_the_relevant_chunk_beside_its_page_image(conversation, verbatim):
    turns, facts = conversation
    with OpticalMemory.open(":memory:", "a", _excerpt_memory("verbatim")) as mem:
        fill(mem, turns)
        for fact_turn, fact in facts[:3]:
            whole = verbatim.context(query=fact.question, budget=6000)
            ctx = mem.context(query=fact.question, budget=6000)
            assert ctx.positions <= 6000
            excerpts = [s for s in ctx.segments if s.kind == "expanded"]
            assert excerpts and all(s.excerpt for s in excerpts) and len(excerpts) <= 3
            assert not ctx.expanded_pages()
            hit = next(s for s in excerpts if fact.answer in s.body)
            # An excerpt is a piece of its page, names the turns it shows, and the page's image stays.
            page = next(p for p in mem.pages() if p.number == hit.page)
            assert page.first_turn <= hit.first_turn <= hit.last_turn <= page.last_turn
            assert hit.first_turn <= fact_turn + 1 <= hit.last_turn  # turn ids count from 1
            assert len(hit.body) <= 3 * mem.config.retrieval.chunk_chars
            if page.tier is not None:
                assert hit.page in ctx.page_tiers()
            index = ctx.segments.index(hit)
            assert any(s.kind == "page" and s.page == hit.page for s in ctx.segments[:index]) or page.tier is None
            # Far cheaper in text than re-expanding whole pages.
            text_positions = lambda c: sum(s.positions for s in c.segments if s.kind == "expanded")  # noqa: E731
            assert text_positions(ctx) < text_positions(whole)


def test_optical_excerpts_are_cut_from_the_ocr_read(conversation):
    turns, facts = conversation
    with OpticalMemory.open(":memory:", "a", _excerpt_memory("optical", max_excerpts=8, max_pages=1)) as mem:
        fill(mem, turns)
        _, fact = facts[0]
        ctx = mem.context(query=fact.question, budget=6000)
        excerpts = [s for s in ctx.segments if s.kind == "expanded"]
        assert excerpts and all(s.source == "ocr" and s.excerpt for s in excerpts)
        assert any(fact.answer in s.body for s in excerpts)
        assert len({s.page for s in excerpts}) == 1  # max_pages bounds the OCR reads


def test_turns_unit_puts_the_ranked_turns_beside_the_page_images(conversation):
    # reexpand.unit = "turns": the turns retrieval ranks for the query, as text, up to text_share
    # of the budget left after the recent turns; the pages stay in context as images.
    turns, facts = conversation
    cfg = MemoryConfig.model_validate({"archive": "verbatim",
                                       "reexpand": {"unit": "turns", "text_share": 0.4, "text_when_it_fits": False}})
    with OpticalMemory.open(":memory:", "a", cfg) as mem:
        fill(mem, turns)
        for fact_turn, fact in facts[:3]:
            ctx = mem.context(query=fact.question, budget=6000)
            assert ctx.positions <= 6000
            text = [s for s in ctx.segments if s.kind == "expanded"]
            recent = sum(s.positions for s in ctx.segments if s.kind == "turn")
            assert text and all(s.excerpt for s in text) and not ctx.expanded_pages()
            assert sum(s.positions for s in text) <= 0.4 * (6000 - recent)
            hit = next(s for s in text if fact.answer in s.body)
            assert hit.first_turn <= fact_turn + 1 <= hit.last_turn  # turn ids count from 1
            assert any(s.kind == "page" for s in ctx.segments)  # images fill the rest
            # Without a query there is nothing to rank: images only, as for every unit.
        assert not [s for s in mem.context(budget=6000).segments if s.kind == "expanded"]


def test_text_share_must_be_a_share():
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValidationError, match="text_share"):
            MemoryConfig.model_validate({"reexpand": {"unit": "turns", "text_share": bad}})


def test_turns_unit_indexes_turns_as_pages_seal_so_the_first_query_embeds_nothing_more(conversation):
    # and an optical archive indexes them before a seal drops their text
    turns, facts = conversation
    for archive in ("verbatim", "optical"):
        cfg = MemoryConfig.model_validate({"archive": archive, "reexpand": {"unit": "turns"}})
        with OpticalMemory.open(":memory:", "a", cfg) as mem:
            fill(mem, turns)
            assert mem._store.turn_units_through(mem._conv) > 0
            # Left for the first query: only turns on the open page (indexed when it seals).
            open_first = next(p for p in mem.pages() if not p.sealed).first_turn
            assert all(seq >= open_first for seq, _, _ in mem.index_work().turns)
            # The pages are not embedded (their turns are): their chunks are in the keyword index only.
            assert mem._store.embedding_count(mem._conv) == 0
            assert not mem._store.unindexed_pages(mem._conv)
            sealed = [p.number for p in mem.pages() if p.sealed]
            assert all((mem.page_text(n) is None) == (archive == "optical") for n in sealed)


def test_a_memory_that_ranks_turns_recalls_pages_by_their_turns(conversation):
    turns, facts = conversation
    cfg = MemoryConfig.model_validate({"reexpand": {"unit": "turns"}})
    with OpticalMemory.open(":memory:", "a", cfg) as mem:
        fill(mem, turns)
        found = 0
        for fact_turn, fact in facts:
            hits = mem.recall(fact.question, k=3)
            assert hits and len({h.page for h in hits}) == len(hits)
            found += any(fact.answer in h.text for h in hits)
        assert found >= len(facts) - 1


def test_turns_unit_shares_the_budget_between_turns_and_pages_by_value(conversation):
    # reexpand.unit = "turns" without a text_share: optmem.allocation decides, query by query.
    turns, facts = conversation
    cfg = MemoryConfig.model_validate({"reexpand": {"unit": "turns", "text_when_it_fits": False}})
    with OpticalMemory.open(":memory:", "a", cfg) as mem:
        fill(mem, turns)
        schedule_tier = {p.number: p.tier for p in mem.pages()}
        order = [t.value for t in Tier]
        for fact_turn, fact in facts[:3]:
            for budget in (1500, 6000):
                ctx = mem.context(query=fact.question, budget=budget)
                assert budget - 100 <= ctx.positions <= budget  # nothing idles while memory is left out
                text = [s for s in ctx.segments if s.kind == "expanded"]
                assert text and all(s.excerpt for s in text)
                assert any(fact.answer in s.body for s in text)  # the turn that answers, as text
                for page, tier in ctx.page_tiers().items():  # never sharper than its age allows
                    assert order.index(tier) >= order.index(schedule_tier[page])
