"""optmem as a benchmarked system: ingest a conversation, ask for a context, and say where a
turn ended up in it (as text, re-expanded text, or a page image at some tier)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .haystack import DialogTurn
from .protocol import Location, Transcript

UNDATED_EPOCH = 1_700_000_000.0  # 2023-11-14 22:13 UTC


@dataclass
class OptmemView:
    system: str
    text: str
    positions: int
    context: Any
    context_s: float
    turn_ids: Sequence[int]  # the memory's id of each transcript turn
    segments: list[dict] = field(default_factory=list)

    def locate(self, turn: int) -> Location:
        """``text``: "turn", "expanded:verbatim", "expanded:ocr" or None; ``page_tier``: the tier
        of an in-context page image holding the turn."""
        turn_id = self.turn_ids[turn]
        as_text, page_tier = None, None
        for s in self.segments:
            if s["kind"] == "turn" and s["turn_id"] == turn_id:
                as_text = "turn"
            elif s["kind"] == "expanded" and s["first_turn"] <= turn_id <= s["last_turn"] and as_text is None:
                as_text = f"expanded:{s['source']}"
            elif s["kind"] == "page" and s["first_turn"] <= turn_id <= s["last_turn"]:
                page_tier = s["tier"]
        return Location(as_text, page_tier)

    def messages(self, question: str) -> list[dict]:
        from .llm import context_messages

        return context_messages(self.context, question)

    def text_segments(self) -> list[tuple[str, str]]:
        return [(s.kind if s.kind != "expanded" else f"expanded:{s.source}", s.text) for s in self.context.segments
                if getattr(s, "text", None) and s.kind != "query"]


def _segment_record(seg: Any) -> dict:
    rec = {"kind": seg.kind, "positions": seg.positions}
    for attr in ("page", "tier", "first_turn", "last_turn", "turn_id", "source", "side"):
        if hasattr(seg, attr):
            rec[attr] = getattr(seg, attr)
    return rec


@dataclass
class OptmemRun:
    """One ingested conversation."""

    memory: Any
    turn_ids: list[int]
    ingest_s: float
    system: str = "optmem"

    def context(self, query: str | None, budget: int) -> OptmemView:
        """optmem's context for ``query``. The question must be in front of the model for every
        system and paid from the same budget: when the context does not carry the query as a
        segment of its own, optmem is asked for ``budget`` minus the query's positions and the
        query is appended to the text view, exactly as the baselines do."""
        from optmem.tokens import count_tokens

        from .textview import format_query

        q_cost = count_tokens(format_query(query)) if query else 0
        t0 = time.perf_counter()
        ctx = self.memory.context(query, budget=budget - q_cost)
        dt = time.perf_counter() - t0
        has_query = any(s.kind == "query" for s in ctx.segments)
        positions = ctx.positions + (0 if has_query or not query else q_cost)
        if positions > budget:  # the product's hard invariant; a benchmark must not hide a breach
            raise AssertionError(f"context used {positions} positions over the budget {budget}")
        text = ctx.to_text()
        if query and not has_query:
            text += format_query(query)
        return OptmemView(self.system, text, positions, ctx, dt, self.turn_ids, [_segment_record(s) for s in ctx.segments])

    def stats(self) -> dict[str, float | int]:
        return {"ingest_s": self.ingest_s, "pages": len(self.memory.pages())}

    def age_class(self, turn: int) -> str:
        """The turn's age class: "text" while it is a recent turn, else the tier its page is
        stored at by the schedule ("evicted" when past the last step)."""
        turn_id = self.turn_ids[turn]
        for page in self.memory.pages():
            if page.first_turn <= turn_id <= page.last_turn:
                return page.tier or "evicted"
        return "text"

    def close(self) -> None:
        self.memory.close()


def ingest(turns: Sequence[DialogTurn], config: Any, *, path: str | Path = ":memory:",
           conversation: str = "bench", system: str = "optmem") -> OptmemRun:
    from optmem import OpticalMemory

    mem = OpticalMemory.open(path, conversation=conversation, config=config)
    t0 = time.perf_counter()
    # Undated turns get a fixed clock, a minute apart: page headers show the time, and the wall
    # clock would make every run's pages (and the chunks embedded from them) differ.
    ids = [mem.add(t.role, t.text, timestamp=t.timestamp if t.timestamp is not None else UNDATED_EPOCH + 60 * i)
           for i, t in enumerate(turns)]
    return OptmemRun(mem, ids, time.perf_counter() - t0, system)


class OptmemSystem:
    """optmem under one MemoryConfig (its archive, re-expansion unit, schedule...)."""

    bounded = True
    paged = True

    def __init__(self, name: str, config: Any):
        self.name, self.config = name, config

    def ingest(self, transcript: Transcript) -> OptmemRun:
        return ingest(transcript.turns, self.config, conversation=transcript.name, system=self.name)
