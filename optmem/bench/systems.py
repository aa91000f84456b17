"""optmem as a benchmarked system: ingest a conversation, ask for a context, and say where a
turn ended up in it (as text, re-expanded text, or a page image at some tier)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .haystack import DialogTurn


@dataclass
class OptmemRun:
    """One ingested conversation."""

    memory: Any
    turn_ids: list[int]
    ingest_s: float


@dataclass
class OptmemView:
    system: str
    text: str
    positions: int
    context: Any
    context_s: float
    segments: list[dict] = field(default_factory=list)

    def locate(self, turn_id: int) -> dict:
        """Where ``turn_id`` is in this context: ``text`` ("turn", "expanded:verbatim",
        "expanded:ocr" or None) and ``page_tier`` (tier of an in-context page image holding it)."""
        as_text, page_tier = None, None
        for s in self.segments:
            if s["kind"] == "turn" and s["turn_id"] == turn_id:
                as_text = "turn"
            elif s["kind"] == "expanded" and s["first_turn"] <= turn_id <= s["last_turn"] and as_text is None:
                as_text = f"expanded:{s['source']}"
            elif s["kind"] == "page" and s["first_turn"] <= turn_id <= s["last_turn"]:
                page_tier = s["tier"]
        return {"text": as_text, "page_tier": page_tier}


def memory_config(base: Any = None, **overrides: Any):
    """A MemoryConfig from ``base`` (None, a TOML path, a dict or a MemoryConfig) with top-level
    fields replaced by ``overrides``."""
    from optmem.config import MemoryConfig, load_config

    cfg = load_config(base)
    if overrides:
        data = cfg.model_dump()
        data.update(overrides)
        cfg = MemoryConfig.model_validate(data)
    return cfg


UNDATED_EPOCH = 1_700_000_000.0  # 2023-11-14 22:13 UTC


def ingest(turns: Sequence[DialogTurn], config: Any, *, path: str | Path = ":memory:",
           conversation: str = "bench") -> OptmemRun:
    from optmem import OpticalMemory

    mem = OpticalMemory.open(path, conversation=conversation, config=config)
    t0 = time.perf_counter()
    # Undated turns get a fixed clock, a minute apart: page headers show the time, and the wall
    # clock would make every run's pages (and the chunks embedded from them) differ.
    ids = [mem.add(t.role, t.text, timestamp=t.timestamp if t.timestamp is not None else UNDATED_EPOCH + 60 * i)
           for i, t in enumerate(turns)]
    return OptmemRun(mem, ids, time.perf_counter() - t0)


def _segment_record(seg: Any) -> dict:
    rec = {"kind": seg.kind, "positions": seg.positions}
    for attr in ("page_id", "tier", "first_turn", "last_turn", "turn_id", "source", "slots"):
        if hasattr(seg, attr):
            rec[attr] = getattr(seg, attr)
    return rec


def view(run: OptmemRun, query: str | None, budget: int, system: str) -> OptmemView:
    """optmem's context for ``query``. The question must be in front of the model for every
    system and paid from the same budget: when the context does not carry the query as a segment
    of its own, optmem is asked for ``budget`` minus the query's positions and the query is
    appended to the text view, exactly as the baselines do."""
    from optmem.tokens import count_tokens

    from .textview import format_query

    q_cost = count_tokens(format_query(query)) if query else 0
    t0 = time.perf_counter()
    ctx = run.memory.context(query, budget=budget - q_cost)
    dt = time.perf_counter() - t0
    has_query = any(s.kind == "query" for s in ctx.segments)
    positions = ctx.positions + (0 if has_query or not query else q_cost)
    if positions > budget:  # the product's hard invariant; a benchmark must not hide a breach
        raise AssertionError(f"context used {positions} positions over the budget {budget}")
    text = ctx.to_text()
    if query and not has_query:
        text += format_query(query)
    return OptmemView(system, text, positions, ctx, dt, [_segment_record(s) for s in ctx.segments])


def scheduled_tier(run: OptmemRun, turn_id: int) -> str:
    """The age class of a turn in memory: "text" while it is a recent turn, else the tier its
    page is stored at by the schedule ("evicted" when past the last step)."""
    for page in run.memory.pages():
        if page.first_turn <= turn_id <= page.last_turn:
            return page.tier or "evicted"
    return "text"
