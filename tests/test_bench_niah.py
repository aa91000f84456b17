"""The NIAH harness end to end on a small grid (real optmem, retrieval off so no model loads)."""

from pathlib import Path

import pytest

from optmem.bench.niah import NiahConfig, run

ESSAYS = Path(__file__).resolve().parents[2] / "shared" / "data" / "pg_essays"
pytestmark = pytest.mark.skipif(not ESSAYS.exists(), reason=f"benchmark data not found at {ESSAYS}")
NO_RETRIEVAL = {"retrieval": {"enabled": False}, "recent_turns": 3}


def _cfg(**kw) -> NiahConfig:
    base = dict(lengths=(3000,), ages=(0, 14), needles=("word-number", "sf"), haystacks=("pg",),
                systems=("window", "optmem-verbatim", "full"), budget=2000, essays=ESSAYS, memory_config=NO_RETRIEVAL)
    base.update(kw)
    return NiahConfig(**base)


def test_small_grid_scores_and_accounts_positions():
    out = run(_cfg())
    samples = {(s["needle"], s["age"]): s for s in out["samples"]}
    assert set(samples) == {("word-number", 0), ("word-number", 14), ("sf", 0), ("sf", 14)}
    for (kind, age), s in samples.items():
        full, window, om = (s["systems"][n] for n in ("full", "window", "optmem-verbatim"))
        assert full["score"] == 1.0 and full["positions"] > 2000
        assert window["positions"] <= 2000 and om["positions"] <= 2000
        if age == 0:  # the last turn: every system holds it as text
            assert window["score"] == om["score"] == 1.0 and om["needle_as_text"] == "turn"
            assert s["age_class"] == "text"
        else:  # 14 turns back is outside a 2000-position window and on an optmem page
            assert window["score"] == 0.0 and not window["needle_as_text"]
            assert s["age_class"] in ("large", "base", "small", "tiny", "evicted")
    # The page image is the only carrier of the sf sentence; the ledger carries the number.
    assert samples[("word-number", 14)]["systems"]["optmem-verbatim"]["found_in"] == ["ledger"]
    assert samples[("sf", 14)]["systems"]["optmem-verbatim"]["score"] == 0.0
    summ = out["summary"]
    assert summ["recall_by_age_class"]["text"]["window"] == 100.0
    assert summ["mean_positions"]["full"] > summ["mean_positions"]["window"]


def test_runs_are_deterministic():
    a, b = run(_cfg(ages=(14,), needles=("multikey",))), run(_cfg(ages=(14,), needles=("multikey",)))
    strip = lambda o: [{k: v for k, v in s["systems"]["optmem-verbatim"].items() if not k.endswith("_s")} for s in o["samples"]]
    assert strip(a) == strip(b) and a["summary"] == b["summary"]


def test_ages_beyond_the_conversation_are_skipped_and_bad_config_rejected():
    out = run(_cfg(ages=(10_000,), needles=("sf",), systems=("window",)))
    assert out["samples"] == [] and out["skipped"][0]["age"] == 10_000
    with pytest.raises(ValueError, match="needles"):
        run(_cfg(needles=("nope",)))
    with pytest.raises(ValueError, match="lengths"):
        run(_cfg(lengths=(10,)))


def test_locomo_lengths_limit_only_the_dialogue_haystack():
    locomo = ESSAYS.parent / "locomo" / "locomo5_dev.json"
    if not locomo.exists():
        pytest.skip(f"LoCoMo data not found at {locomo}")
    out = run(_cfg(lengths=(1500, 3000), locomo_lengths=(1500,), ages=(4,), needles=("sf",), haystacks=("pg", "locomo"),
                   systems=("window",), locomo=locomo))
    assert sorted((s["haystack"], s["length"]) for s in out["samples"]) == [("locomo", 1500), ("pg", 1500), ("pg", 3000)]
    with pytest.raises(ValueError, match="locomo_lengths"):
        run(_cfg(locomo_lengths=(10,)))


def test_undated_haystacks_ingest_to_the_same_pages_every_run():
    from optmem.bench.haystack import DialogTurn
    from optmem.bench.common import memory_config
    from optmem.bench.optmem_system import ingest

    turns = [DialogTurn("user" if i % 2 == 0 else "assistant", f"turn {i} " + "words and more words " * 12)
             for i in range(60)]
    hashes = []
    for _ in range(2):
        run_ = ingest(turns, memory_config(NO_RETRIEVAL))
        pages = [p for p in run_.memory.pages() if p.sealed]
        hashes.append([run_.memory.page_image(p.number).tobytes() for p in pages])
        first = run_.memory.page_text(pages[0].number)
        run_.memory.close()
        assert "user · #1 · 2023-11-14 22:13 UTC" in first  # the fixed clock, not today's
    assert hashes[0] and hashes[0] == hashes[1]


def test_a_ledger_credits_a_needle_only_with_its_key():
    from optmem.bench.needles import Needle
    from optmem.bench.niah import needle_score

    class View:
        def __init__(self, *segments):
            self._segments = segments
            self.text = "".join(t for _, t in segments)

        def text_segments(self):
            return list(self._segments)

    needle = Needle("word-number", "One of the special magic numbers for brave-otter is: 4417210.", "?", ("4417210",),
                    key="brave-otter")
    assert needle_score(View(("ledger", "[page 3 exact strings: 4417210, 99]")), needle) == 0.0
    assert needle_score(View(("ledger", "[page 3 exact strings: brave-otter 4417210]")), needle) == 1.0
    assert needle_score(View(("expanded:verbatim", needle.sentence)), needle) == 1.0
    assert needle_score(View(("turn", "nothing here")), needle) == 0.0
