"""The text baselines pay exactly what optmem's assembler would for the same turns."""

import numpy as np
import pytest

from optmem.reader import format_turn
from optmem.bench import baselines
from optmem.bench.haystack import DialogTurn
from optmem.bench.textview import format_query
from optmem.tokens import count_tokens

TURNS = [DialogTurn("user" if i % 2 == 0 else "assistant", f"turn {i} says " + "word " * (5 + 3 * i)) for i in range(12)]
Q = "what did turn 3 say?"


def _cost(view):
    body = sum(count_tokens(format_turn(TURNS[i].role, TURNS[i].text)) for i in view.turns)
    return 1 + body + count_tokens(format_query(Q))


def test_textview_follows_the_assembler():
    assert format_query(Q) == format_turn("user", Q)


@pytest.mark.parametrize("budget", [40, 120, 300, 100_000])
def test_sliding_window_is_the_newest_contiguous_turns_that_fit(budget):
    v = baselines.sliding_window(TURNS, Q, budget)
    assert v.positions == _cost(v) <= budget
    assert v.turns == list(range(len(TURNS) - len(v.turns), len(TURNS)))
    if v.turns and v.turns[0] > 0:  # the next older turn would not have fit
        nxt = count_tokens(format_turn(TURNS[v.turns[0] - 1].role, TURNS[v.turns[0] - 1].text))
        assert v.positions + nxt > budget
    assert v.text.endswith(format_query(Q))


def test_full_text_is_everything_and_its_cost():
    v = baselines.full_text(TURNS, Q)
    assert v.turns == list(range(len(TURNS))) and v.positions == _cost(v)


def test_retrieval_keeps_recent_turns_then_the_most_similar_that_fit():
    emb = np.eye(len(TURNS), dtype=np.float32)
    query = emb[3] * 0.9 + emb[5] * 0.1
    budget = _cost(baselines.TextView("x", "", 0, [9, 10, 11, 3]))
    v = baselines.text_retrieval(TURNS, Q, budget, recent=3, embeddings=emb, query_embedding=query)
    assert v.turns == [3, 9, 10, 11]
    assert v.positions == _cost(v) <= budget
    bigger = baselines.text_retrieval(TURNS, Q, budget + 200, recent=3, embeddings=emb, query_embedding=query)
    assert {3, 5, 9, 10, 11} <= set(bigger.turns) and bigger.positions <= budget + 200


def test_retrieval_without_query_is_the_window():
    emb = np.eye(len(TURNS), dtype=np.float32)
    a = baselines.text_retrieval(TURNS, None, 200, recent=3, embeddings=emb, query_embedding=None)
    b = baselines.sliding_window(TURNS, None, 200)
    assert (a.turns, a.positions, a.system) == (b.turns, b.positions, "retrieval")
