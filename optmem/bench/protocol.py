"""What a benchmark runs: a System ingests a conversation, then builds what it would put in front
of the model for a query at a position budget, and says where each turn ended up in it.

Benchmarks score the View's text and read the flags below; they never branch on a system's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from .haystack import DialogTurn
from .textview import turn_costs


@dataclass(frozen=True)
class Transcript:
    """A conversation as every system is given it: the turns, and the positions each costs as
    text (counted once per conversation, shared by the text systems)."""

    name: str
    turns: tuple[DialogTurn, ...]
    costs: tuple[int, ...]

    @classmethod
    def of(cls, turns: Sequence[DialogTurn], name: str = "bench", costs: Sequence[int] | None = None) -> "Transcript":
        costs = turn_costs(turns) if costs is None else costs
        if len(costs) != len(turns):
            raise ValueError(f"costs: {len(costs)} values for {len(turns)} turns")
        return cls(name, tuple(turns), tuple(costs))


@dataclass(frozen=True)
class Location:
    """Where one turn is in a context."""

    text: str | None = None  # "turn", "expanded:verbatim", "expanded:ocr"; None: not as text
    page_tier: str | None = None  # tier of an in-context page image holding the turn

    @property
    def where(self) -> str | None:
        """The turn as text if it is, else the page it is on (``page:<tier>``), else None."""
        return self.text or (f"page:{self.page_tier}" if self.page_tier else None)


class View(Protocol):
    """One context, built for one query."""

    system: str
    text: str  # what a text-only reader sees, the question last
    positions: int  # decoder positions the context uses

    def locate(self, turn: int) -> Location:
        """Where the transcript's turn ``turn`` (its index) is in this context."""
        ...

    def messages(self, question: str) -> list[dict]:
        """The context as chat messages for ``--llm``, the question last."""
        ...


class PagedView(View, Protocol):
    """The view of a paged system: a context that mixes text segments and page images."""

    context_s: float  # time to build it

    def text_segments(self) -> list[tuple[str, str]]:
        """(kind, text) of every text segment but the query: kind is the segment's kind, or
        ``expanded:<source>`` for a page read back to text."""
        ...


class Ingested(Protocol):
    """One conversation as a system holds it."""

    def context(self, query: str | None, budget: int) -> View: ...

    def stats(self) -> dict[str, float | int]:
        """What ingesting cost (e.g. ``ingest_s``, ``pages``); empty for the text systems."""
        ...

    def age_class(self, turn: int) -> str | None:
        """How the system files the turn by age ("text", a page tier, "evicted"); None when it
        does not age turns."""
        ...

    def close(self) -> None: ...


class System(Protocol):
    name: str
    bounded: bool  # keeps to the budget; the full text, the upper bound, does not
    paged: bool  # can hold turns as page images: its views are PagedViews

    def ingest(self, transcript: Transcript) -> Ingested: ...
