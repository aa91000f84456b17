"""The plain-text alternatives optmem is compared with, under optmem's own position accounting:
BOS + the tokens of each formatted turn (+ the formatted query), never more than the budget.

The policies are pure functions of the turns; the System classes below put them behind the
benchmarks' protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from optmem.tokens import count_tokens

from .haystack import DialogTurn
from .protocol import Location, Transcript
from .textview import format_query, format_turn, turn_costs

BOS_POSITIONS = 1


@dataclass
class TextView:
    """What a text-only system puts in front of the model."""

    system: str
    text: str
    positions: int
    turns: list[int] = field(default_factory=list)  # indices of the turns present, chronological

    def locate(self, turn: int) -> Location:
        return Location(text="turn") if turn in self.turns else Location()

    def messages(self, question: str) -> list[dict]:
        from .llm import text_messages

        return text_messages(self.text)  # the question is already last in the text


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
    costs = list(costs) if costs is not None else turn_costs(turns)
    return _assemble("full", turns, list(range(len(turns))), query, _base_cost(query) + sum(costs))


def sliding_window(turns: Sequence[DialogTurn], query: str | None, budget: int,
                   costs: Sequence[int] | None = None) -> TextView:
    """The newest turns that fit, contiguous (stops at the first turn that does not fit)."""
    costs = list(costs) if costs is not None else turn_costs(turns)
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
    costs = list(costs) if costs is not None else turn_costs(turns)
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


@dataclass
class TextIngested:
    """A conversation held as plain text by one of the policies."""

    transcript: Transcript
    policy: Any  # (transcript, query, budget) -> TextView

    def context(self, query: str | None, budget: int) -> TextView:
        return self.policy(self.transcript, query, budget)

    def stats(self) -> dict[str, float | int]:
        return {}

    def age_class(self, turn: int) -> str | None:
        return None

    def close(self) -> None:
        pass


class WindowSystem:
    name = "window"
    bounded = True
    paged = False

    def ingest(self, transcript: Transcript) -> TextIngested:
        return TextIngested(transcript, lambda t, q, budget: sliding_window(t.turns, q, budget, t.costs))


class FullTextSystem:
    name = "full"
    bounded = False
    paged = False

    def ingest(self, transcript: Transcript) -> TextIngested:
        return TextIngested(transcript, lambda t, q, budget: full_text(t.turns, q, t.costs))


class RetrievalSystem:
    """Text retrieval with optmem's embedder, keeping optmem's ``recent`` turns."""

    name = "retrieval"
    bounded = True
    paged = False

    def __init__(self, embedder: Any, *, recent: int):
        self.embedder, self.recent = embedder, recent

    def ingest(self, transcript: Transcript) -> TextIngested:
        embeddings = self.embedder.encode([t.text for t in transcript.turns])

        def policy(t: Transcript, query: str | None, budget: int) -> TextView:
            q_emb = self.embedder.encode([query])[0] if query else None
            return text_retrieval(t.turns, query, budget, recent=self.recent, embeddings=embeddings,
                                  query_embedding=q_emb, costs=t.costs)

        return TextIngested(transcript, policy)
