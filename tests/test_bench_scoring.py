"""Scoring, needles and haystacks of optmem.bench: pure functions, no models."""

import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optmem.bench.haystack import (
    essay_turns, insert_sentence, load_essays, load_locomo, locomo_haystack, locomo_turns, parse_locomo_time,
)
from optmem.bench.needles import NEEDLE_KINDS, SF_NEEDLE, make_needle
from optmem.bench.scoring import (
    answer_contained, cer, lcs_length, levenshtein, normalize_answer, precision, string_match_all,
)
from optmem.tokens import count_tokens

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data from the repo root
ESSAYS, LOCOMO = DATA / "pg_essays", DATA / "locomo" / "locomo5_dev.json"


def need(path: Path):
    return pytest.mark.skipif(not path.exists(), reason=f"benchmark data not found at {path}")


def test_string_match_all_is_share_of_golds_case_insensitive():
    assert string_match_all("The numbers are 1234567 and ABC", ["1234567", "abc"]) == 1.0
    assert string_match_all("only 1234567", ["1234567", "7654321"]) == 0.5
    assert string_match_all("", ["x"]) == 0.0
    with pytest.raises(ValueError):
        string_match_all("text", [])


def test_locomo_normalisation_and_containment():
    assert normalize_answer("The  Sunday, before 25 May!") == "sunday before 25 may"
    assert answer_contained("7 May 2023", "Caroline: I went on 7 May, 2023 to the group")
    assert not answer_contained("May", "Mayday")  # word boundaries
    assert not answer_contained("", "anything")


@pytest.mark.parametrize("kind", NEEDLE_KINDS)
def test_needles_are_deterministic_and_hold_their_answer(kind):
    a, b = make_needle(kind, random.Random(5)), make_needle(kind, random.Random(5))
    assert a == b
    assert string_match_all(a.sentence, a.golds) == 1.0
    assert string_match_all(a.question, a.golds) == 0.0  # the question never gives the answer away
    for d in a.distractors:
        assert string_match_all(d, a.golds) < 1.0


def test_needle_shapes():
    rng = random.Random(1)
    assert re.fullmatch(r"\d{7}", make_needle("word-number", rng).golds[0])
    u = make_needle("uuid-uuid", rng)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", u.golds[0])
    m = make_needle("multikey", rng, n_distractors=5)
    keys = {s.split(" for ")[1].split(" is:")[0] for s in (m.sentence, *m.distractors)}
    assert len(m.distractors) == 5 and len(keys) == 6
    assert make_needle("sf", rng).sentence == SF_NEEDLE
    with pytest.raises(ValueError, match="unknown needle kind"):
        make_needle("nope", rng)


def test_insert_sentence_keeps_text_and_starts_a_sentence():
    text = "One. Two! Three? Four."
    for seed in range(6):
        out = insert_sentence(text, "NEEDLE.", random.Random(seed))
        assert out.replace(" NEEDLE.", "").replace("NEEDLE. ", "") == text
        assert re.search(r"(^|[.!?] )NEEDLE\.", out)


@need(ESSAYS)
def test_essay_turns_alternate_and_reach_the_target():
    turns = essay_turns(load_essays(ESSAYS), 3000, random.Random(0))
    assert [t.role for t in turns[:4]] == ["user", "assistant", "user", "assistant"]
    total = sum(count_tokens(t.text) for t in turns)
    assert 3000 <= total < 3000 + 400
    assert turns == essay_turns(load_essays(ESSAYS), 3000, random.Random(0))


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="essays"):
        load_essays(tmp_path)
    with pytest.raises(FileNotFoundError, match="LoCoMo"):
        load_locomo(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}')
    with pytest.raises(ValueError, match="not LoCoMo data"):
        load_locomo(bad)
    with pytest.raises(ValueError, match="date_time"):
        parse_locomo_time("yesterday")


@need(LOCOMO)
def test_locomo_turns_in_session_order_with_timestamps():
    sample = load_locomo(LOCOMO)[0]
    turns = locomo_turns(sample)
    assert turns[0].dia_id == "D1:1" and turns[0].role == "user"
    conv = sample["conversation"]
    assert turns[0].text.startswith(f"[{conv['session_1_date_time']}] {conv['speaker_a']}: ")
    assert turns[1].text.startswith(conv["speaker_b"] + ": ")  # the date opens a session only
    assert not locomo_turns(sample, session_dates=False)[0].text.startswith("[")
    stamps = [t.timestamp for t in turns]
    assert stamps == sorted(stamps)
    sessions = [int(t.dia_id.split(":")[0][1:]) for t in turns]
    assert sessions == sorted(sessions)
    hay = locomo_haystack([sample], 2000)
    assert sum(count_tokens(t.text) for t in hay) >= 2000


# --- edit distances of re-expanded text ------------------------------------------------------

def _dp_levenshtein(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _dp_lcs(a, b):
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0]
        for j, cb in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if ca == cb else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(alphabet="abc国 ", max_size=70), st.text(alphabet="abc国 ", max_size=70))
def test_bit_parallel_distances_match_dynamic_programming(a, b):
    assert levenshtein(a, b) == _dp_levenshtein(a, b)
    assert lcs_length(a, b) == _dp_lcs(a, b)


def test_cer_and_precision_values():
    assert cer("abcd", "abcd") == 0.0
    assert cer("abcd", "abxd") == 0.25
    assert cer("abcd", "") == 1.0
    assert cer("", "") == 0.0 and cer("", "x") == 1.0
    assert precision("abcd", "abcdXXXX") == 0.5  # invented text lowers precision, not recall
    assert precision("abcd", "ab") == 1.0
    assert precision("abc", "") == 1.0
    long_a = "x" * 3000 + "y" * 3000
    assert levenshtein(long_a, "x" * 2999 + "z" + "y" * 3000) == 1


def test_the_paired_bootstrap_brackets_the_mean_and_is_reproducible():
    from optmem.bench.scoring import paired_bootstrap

    diffs = [0.0] * 80 + [1.0] * 15 + [-1.0] * 5
    mean, lo, hi = paired_bootstrap(diffs, seed=3)
    assert mean == 0.1 and lo < 0.1 < hi and 0.0 < lo and hi < 0.25
    assert paired_bootstrap(diffs, seed=3) == (mean, lo, hi)
    assert paired_bootstrap([0.0] * 10) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        paired_bootstrap([])


def test_locomo_pairs_each_system_with_retrieval_on_the_same_questions():
    from optmem.bench.locomo import paired_against

    q = lambda cat, r, o: {"category": cat, "systems": {"retrieval": {"evidence_text": r}, "optmem": {"evidence_text": o}}}
    out = paired_against([q(1, 1.0, 0.0), q(2, 0.5, 1.0), q(5, 0.0, 1.0)] * 10)
    assert out["optmem"]["n"] == 20 and out["optmem"]["difference"] == -25.0
    assert out["optmem"]["low"] <= -25.0 <= out["optmem"]["high"]
