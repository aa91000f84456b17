"""The plain-text alternatives optmem is compared with, under optmem's own position accounting:
BOS + the tokens of each formatted turn (+ the formatted query), never more than the budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from optmem.tokens import count_tokens

from .haystack import DialogTurn
from .textview import format_query, format_turn

BOS_POSITIONS = 1


@dataclass
class TextView:
    """What a text-only system puts in front of the model."""

    system: str
    text: str
    positions: int
    turns: list[int] = field(default_factory=list)  # indices of the turns present, chronological


def _turn_costs(turns: Sequence[DialogTurn]) -> list[int]:
    return [count_tokens(format_turn(t.role, t.text)) for t in turns]


def _assemble(system: str, turns: Sequence[DialogTurn], chosen: list[int], query: str | None, positions: int) -> TextView:
    chosen = sorted(chosen)
    body = "".join(format_turn(turns[i].role, turns[i].text) for i in chosen)
    if query:
        body += format_query(query)
    return TextView(system, body, positions, chosen)


def _base_cost(query: str | None) -> int:
    return BOS_POSITIONS + (count_tokens(format_query(query)) if query else 0)


def full_text(turns: Sequence[DialogTurn], query: str | None, costs: Sequence[int] | None = None) -> TextView:
    """Everything as text, no budget: the upper bound and its cost."""
    costs = list(costs) if costs is not None else _turn_costs(turns)
    return _assemble("full", turns, list(range(len(turns))), query, _base_cost(query) + sum(costs))


def sliding_window(turns: Sequence[DialogTurn], query: str | None, budget: int,
                   costs: Sequence[int] | None = None) -> TextView:
    """The newest turns that fit, contiguous (stops at the first turn that does not fit)."""
    costs = list(costs) if costs is not None else _turn_costs(turns)
    used, chosen = _base_cost(query), []
    for i in range(len(turns) - 1, -1, -1):
        if used + costs[i] > budget:
            break
        used += costs[i]
        chosen.append(i)
    return _assemble("window", turns, chosen, query, used)


def text_retrieval(turns: Sequence[DialogTurn], query: str | None, budget: int, *, recent: int,
                   embeddings: np.ndarray, query_embedding: np.ndarray | None,
                   costs: Sequence[int] | None = None) -> TextView:
    """The cheap competitor: the newest ``recent`` turns (as optmem keeps them), then the raw turns
    most similar to the query (cosine over normalised embeddings) while they fit, shown in
    conversation order. Without a query it is the sliding window."""
    costs = list(costs) if costs is not None else _turn_costs(turns)
    if query is None or query_embedding is None:
        view = sliding_window(turns, query, budget, costs)
        view.system = "retrieval"
        return view
    used, chosen = _base_cost(query), []
    n = len(turns)
    for i in range(n - 1, max(n - 1 - recent, -1), -1):
        if used + costs[i] > budget:
            break
        used += costs[i]
        chosen.append(i)
    taken = set(chosen)
    scores = embeddings @ query_embedding
    for i in np.argsort(-scores, kind="stable"):
        i = int(i)
        if i in taken or used + costs[i] > budget:
            continue
        used += costs[i]
        chosen.append(i)
        taken.add(i)
    return _assemble("retrieval", turns, chosen, query, used)


def turn_costs(turns: Sequence[DialogTurn]) -> list[int]:
    return _turn_costs(turns)
