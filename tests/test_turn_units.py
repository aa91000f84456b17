"""Whole turns for a reader without eyes: selection inside the budget, runs and their headings,
the keyword words (CJK included), and the memory's text path end to end."""

import pytest
from hypothesis import given, settings, strategies as st

from optmem import MemoryConfig, OpticalMemory
from optmem.allocation import TextItem
from optmem.retrieval.keywords import index_words, keywords
from optmem.store import TurnRow
from optmem.tokens import count_tokens
from optmem.turn_units import ChosenTurns, run_heading, select_turns, turn_runs

DAY = 86_400.0


def _turns(n, text="turn number {i} says something"):
    return {i: TurnRow(i, "user" if i % 2 else "assistant", text.format(i=i), 1_700_000_000.0 + i * DAY / 4)
            for i in range(1, n + 1)}


def test_cjk_runs_become_character_pairs_and_other_words_stay_whole():
    assert keywords("我喜欢猫 and the Violin") == ["我喜", "喜欢", "欢猫", "violin"]
    assert keywords("猫") == ["猫"]
    assert index_words("b c b 東京タワー") == "b c タワ ワー 京タ 東京"  # distinct, sorted: not the prose


def test_runs_group_consecutive_turns_under_one_heading_with_their_dates():
    turns = _turns(6)
    runs = turn_runs([turns[i] for i in (5, 1, 2, 3)])
    assert [(r.first, r.last) for r in runs] == [(1, 3), (5, 5)]
    assert runs[0].heading == "[2023-11-15]"
    assert runs[0].body == "user: turn number 1 says something\nassistant: turn number 2 says something\n" \
                           "user: turn number 3 says something"
    assert run_heading(turns[1], turns[5]) == "[2023-11-15 to 2023-11-16]"


def test_a_run_of_the_day_the_run_before_ended_goes_without_a_heading():
    turns = _turns(12)  # four turns a day: 1-4 on 2023-11-15, 5-8 on the 16th, 9-12 on the 17th
    runs = turn_runs([turns[i] for i in (1, 3, 4, 5, 7, 8, 11, 12)])
    assert [(r.first, r.heading, r.dated) for r in runs] == [
        (1, "[2023-11-15]", "[2023-11-15]"),
        (3, "[2023-11-15 to 2023-11-16]", "[2023-11-15 to 2023-11-16]"),  # spans a day: dated again
        (7, "", "[2023-11-16]"),  # the 16th, as the run above ended
        (11, "[2023-11-17]", "[2023-11-17]"),
    ]
    assert runs[2].text == "user: turn number 7 says something\nassistant: turn number 8 says something\n"


def _words(text: str) -> int:
    return len(text.split())  # additive over lines, as the tokenizers' counts are between turn lines


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=2, max_size=30), st.data())
def test_a_turns_price_is_what_it_adds_to_the_runs_exactly(day_steps, data):
    # Turn i+1 lies day_steps[i] quarter days after turn i: runs cross days, or stay within one.
    stamps, t = [], 1_700_000_000.0
    for step in day_steps:
        t += step * DAY / 4
        stamps.append(t)
    turns = {i + 1: TurnRow(i + 1, "user", f"turn {i + 1} " + "word " * (i % 3), ts) for i, ts in enumerate(stamps)}
    order = data.draw(st.permutations(list(turns)))
    chosen = ChosenTurns(_words)
    for seq in order:
        price = chosen.price(turns[seq])
        before = sum(_words(r.text) for r in turn_runs(chosen.turns.values()))
        chosen.add(turns[seq])
        assert price == sum(_words(r.text) for r in turn_runs(chosen.turns.values())) - before
    for seq in order[: len(order) // 2]:  # leaving turns out again keeps the runs' ends right
        chosen.remove(seq)
    rest = sorted(set(turns) - set(order[: len(order) // 2]))
    if rest:
        gone = turns[order[0]]
        before = sum(_words(r.text) for r in turn_runs(chosen.turns.values()))
        price = chosen.price(gone)
        chosen.add(gone)
        assert price == sum(_words(r.text) for r in turn_runs(chosen.turns.values())) - before


@pytest.mark.parametrize("budget", [0, 5, 40, 100, 333, 10_000])
def test_selection_never_exceeds_the_budget_and_follows_the_ranking(budget):
    turns = _turns(60)
    order = [7, 30, 31, 8, 59, 1, *range(60, 0, -1)]
    runs = select_turns(order, turns.get, count_tokens, budget)
    chosen = [seq for r in runs for seq in range(r.first, r.last + 1)]
    assert sum(count_tokens(r.text) for r in runs) <= budget
    if budget >= 100:
        assert {7, 30, 31}.issubset(chosen)  # the best ranked go first
    if budget == 10_000:
        assert chosen == list(range(1, 61)) and len(runs) == 1  # everything fits: one run, in order


def test_a_textless_turn_is_offered_to_its_reader_and_its_cost_counted():
    turns = _turns(10)
    turns[4] = TurnRow(4, "user", None, turns[4].timestamp)
    offered = []

    def read(turn, left):
        offered.append((turn.seq, left))
        return TextItem(30, 0.0, (turn.seq,), replaces_page=1)  # its page, read back

    runs = select_turns([4, 5, 6], turns.get, count_tokens, 60, textless=read)
    assert offered == [(4, 60)]
    assert sum(count_tokens(r.text) for r in runs) <= 30


def _text_memory(**overrides):
    config = MemoryConfig.model_validate({"model": "text", "recent_turns": 2, **overrides})
    return OpticalMemory.open(":memory:", conversation="t", config=config)


def test_a_text_reader_gets_the_turn_that_answers_from_far_back_within_budget():
    with _text_memory() as mem:
        mem.add("user", "My sister's dog is called Biscuit and he is a beagle.", timestamp=1_700_000_000)
        for i in range(120):
            mem.add("user" if i % 2 else "assistant", f"Filler line {i} about the weather and nothing else.",
                    timestamp=1_700_000_100 + i)
        ctx = mem.context("What is the name of my sister's dog?", budget=300)
        text = ctx.to_text()
        assert "Biscuit" in text and ctx.positions <= 300
        assert not any(s.kind == "page" for s in ctx.segments)
        assert mem._store.turn_units_through(mem._conv) == 119  # every turn out of the recent window (121 - 2)


def test_text_reader_turn_units_are_indexed_when_pages_seal_not_at_the_first_query():
    with _text_memory() as mem:
        for i in range(200):
            mem.add("user", f"line {i} " + "word " * 40, timestamp=1_700_000_000 + i)
        assert mem.pages() and mem._store.turn_units_through(mem._conv) > 0


def test_an_image_reader_gets_all_of_memory_as_text_when_it_fits():
    config = {"model": "deepseek-ocr", "recent_turns": 2, "retrieval": {"enabled": False}}
    with OpticalMemory.open(":memory:", conversation="t", config=MemoryConfig.model_validate(config)) as mem:
        for i in range(120):
            mem.add("user", f"fact {i}: the code for locker {i} is {1000 + i}.", timestamp=1_700_000_000 + i)
        assert any(p.sealed for p in mem.pages())
        roomy = mem.context(budget=8192)
        assert not any(s.kind == "page" for s in roomy.segments)
        assert all(f"locker {i} is {1000 + i}" in roomy.to_text() for i in range(120))
        tight = mem.context(budget=700)
        assert any(s.kind == "page" for s in tight.segments) and tight.positions <= 700
    config["reexpand"] = {"text_when_it_fits": False}
    with OpticalMemory.open(":memory:", conversation="t", config=MemoryConfig.model_validate(config)) as mem:
        for i in range(120):
            mem.add("user", f"fact {i}: the code for locker {i} is {1000 + i}.", timestamp=1_700_000_000 + i)
        assert any(s.kind == "page" for s in mem.context(budget=8192).segments)


def test_a_page_chunk_keeps_its_text_and_gains_the_pairs_of_its_cjk_runs():
    from optmem.retrieval.keywords import CJK_PAIRS_MARK, chunk_shown, searchable_chunk

    english = "The lighthouse keeper's name is Oswin."
    assert searchable_chunk(english) == english and chunk_shown(english) == english  # indexed as before
    stored = searchable_chunk("门禁密码是 4821，猫")
    assert stored == f"门禁密码是 4821，猫{CJK_PAIRS_MARK}门禁 禁密 密码 码是 猫"
    assert chunk_shown(stored) == "门禁密码是 4821，猫"
    odd = f"a user's text with the mark{CJK_PAIRS_MARK}in it"
    assert searchable_chunk(odd) == odd and chunk_shown(odd) == odd  # only what was added is ever cut


@pytest.mark.parametrize("archive", ["verbatim", "optical"])
def test_an_image_reader_finds_a_chinese_fact_by_its_keywords(archive):
    from optmem.bench.haystack import ZH_SENTENCES
    from tests.fakes import HashEmbedder

    # HashEmbedder splits on spaces: a Chinese turn is one "word", so dense ranking cannot find
    # the fact, and the page comes from the keyword index alone.
    config = {"model": "deepseek-ocr", "archive": archive, "recent_turns": 2, "budget": 3000,
              "reexpand": {"text_when_it_fits": False}, "retrieval": {"min_score": 0.9}}
    with OpticalMemory.open(":memory:", config=config, embedder=HashEmbedder()) as mem:
        for i in range(60):
            text = ZH_SENTENCES[i % len(ZH_SENTENCES)] + ZH_SENTENCES[(3 * i) % len(ZH_SENTENCES)]
            if i == 5:
                text = "顺便说一下，东楼档案室的门禁密码是 4821 号。" + text
            mem.add("user" if i % 2 == 0 else "assistant", text)
        store, conv = mem._store, mem._conv
        hits = store.keyword_chunks(conv, keywords("东楼档案室的门禁密码是多少？"), 3)
        assert hits and hits[0][0] == 1  # the needle's page, found by the query's character pairs
        if archive == "optical":
            assert "顺便说一下" not in hits[0][1]  # the words, not the prose
        else:
            ctx = mem.context("东楼档案室的门禁密码是多少？")
            assert any(s.kind == "expanded" and s.page == 1 for s in ctx.segments)
            assert "东楼档案室的门禁密码是 4821" in ctx.to_text()
