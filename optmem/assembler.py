"""Context: the ordered segments optmem puts in front of a model, with exact position accounting.

A DeepSeek-OCR decoder sees ``[BOS]`` and then each segment in order: a page as its image slots
(Tiny 73, Small 111, Base 273, Large 421, Gundam 693 for a square page), every text segment
tokenised on its own with the plain-text tokenizer. So ``positions = 1 + sum(segment.positions)``
is exact by construction, and :func:`assemble` never returns a context over its budget.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

from optmem.codec.segments import ImageSegment, TextSegment
from optmem.ledger import format_ledger
from optmem.modes import tier_slots
from optmem.schedule import PageCost, fit_pages
from optmem.tokens import IMAGE_PLACEHOLDER, count_tokens

BOS_POSITIONS = 1


class BudgetError(ValueError):
    """The parts of a context that may never be cut do not fit in the budget."""


def format_turn(role: str, text: str) -> str:
    return f"{role}: {text}\n"


def format_page_ledger(page_seq: int, strings: Sequence[str]) -> str:
    return f"[memory page {page_seq}, {format_ledger(strings)}]\n"


def format_expanded(page_seq: int, first_turn: int, last_turn: int, text: str, *, excerpt: bool = False) -> str:
    return f"[memory page {page_seq}, turns {first_turn}-{last_turn}{', excerpt' if excerpt else ''}]\n{text}\n"


@dataclass(frozen=True)
class TurnSegment:
    turn_id: int
    role: str
    body: str
    text: str
    positions: int
    kind: Literal["turn"] = "turn"


@dataclass(frozen=True)
class PageSegment:
    page_id: int  # 0 for the open page: turns past the recent k, not sealed yet
    page_seq: int
    tier: str
    first_turn: int
    last_turn: int
    positions: int
    load_image: Callable[[], Image.Image] = field(repr=False, compare=False)
    kind: Literal["page"] = "page"

    @property
    def slots(self) -> int:
        return self.positions

    @property
    def image(self) -> Image.Image:
        """The page at this segment's tier (square, ``tier`` side; Gundam keeps the 1280 page)."""
        return self.load_image()


@dataclass(frozen=True)
class LedgerSegment:
    page_id: int
    strings: tuple[str, ...]
    text: str
    positions: int
    kind: Literal["ledger"] = "ledger"


@dataclass(frozen=True)
class ExpandedSegment:
    page_id: int
    page_seq: int
    tier: str
    first_turn: int
    last_turn: int
    body: str
    source: Literal["verbatim", "ocr"]
    text: str
    positions: int
    kind: Literal["expanded"] = "expanded"
    excerpt: bool = False  # a part of the page (first_turn..last_turn are the excerpt's); its image may stay


Segment = TurnSegment | PageSegment | LedgerSegment | ExpandedSegment


# -- inputs to assemble() --------------------------------------------------------------------------

@dataclass(frozen=True)
class RecentTurn:
    turn_id: int
    role: str
    text: str


@dataclass(frozen=True)
class MemoryPage:
    """A page the schedule keeps in context, oldest first, as the assembler needs it."""

    page_id: int
    page_seq: int
    tier: str | None  # None: out of the context unless re-expanded
    first_turn: int
    last_turn: int
    ledger: tuple[str, ...]
    load_image: Callable[[str], Image.Image]  # tier -> image at that tier
    pinned: bool = False


@dataclass(frozen=True)
class Expansion:
    """A page, or with ``excerpt`` (its first and last turn) a part of one, re-expanded to text
    because the query needs it. A whole page replaces the page's image; an excerpt goes beside it."""

    page_id: int
    text: str
    source: Literal["verbatim", "ocr"]
    tier: str
    excerpt: tuple[int, int] | None = None


@dataclass
class Context:
    segments: list[Segment]
    budget: int

    @property
    def positions(self) -> int:
        return BOS_POSITIONS + sum(s.positions for s in self.segments)

    def page_tiers(self) -> dict[int, str]:
        return {s.page_id: s.tier for s in self.segments if s.kind == "page"}

    def expanded_pages(self) -> list[int]:
        """Pages re-expanded whole (not those with only excerpts in the context)."""
        return [s.page_id for s in self.segments if s.kind == "expanded" and not s.excerpt]

    def codec_segments(self) -> list[TextSegment | ImageSegment]:
        """The context as the DeepSeek-OCR codec takes it (``codec.splice(ctx.codec_segments())``):
        one ImageSegment per page at its tier, one TextSegment per text segment, in order."""
        return [ImageSegment(s.image, s.tier) if s.kind == "page" else TextSegment(s.text) for s in self.segments]

    def to_text(self) -> str:
        """Everything a text-only model can read: re-expanded pages, ledgers, recent turns.
        Page images are named by a one-line marker so the reader knows memory exists there."""
        parts = []
        for s in self.segments:
            if s.kind == "page":
                parts.append(f"[memory page {s.page_seq}, turns {s.first_turn}-{s.last_turn}: image at {s.tier} tier]\n")
            else:
                parts.append(s.text)
        return "".join(parts)

    def to_messages(self, system: str | None = None) -> list[dict]:
        """OpenAI-style messages. Memory (pages as PNG data URLs, ledgers, re-expanded text) goes
        into one system message; recent turns follow as their own messages. A literal ``<image>``
        in any text is escaped, so a server that expands that placeholder cannot be tricked into
        a mismatch between placeholders and images."""
        memory: list[dict] = []
        if system:
            memory.append({"type": "text", "text": escape_image_placeholder(system)})
        messages: list[dict] = []
        for s in self.segments:
            if s.kind == "page":
                memory.append({"type": "text", "text": f"Memory page {s.page_seq} (turns {s.first_turn}-{s.last_turn}, {s.tier}):"})
                memory.append({"type": "image_url", "image_url": {"url": png_data_url(s.image)}})
            elif s.kind in ("ledger", "expanded"):
                memory.append({"type": "text", "text": escape_image_placeholder(s.text)})
            else:
                messages.append({"role": s.role if s.role != "tool" else "user",
                                 "content": escape_image_placeholder(s.body)})
        if memory:
            if not system:
                memory.insert(0, {"type": "text", "text": "Earlier conversation, oldest first:"})
            messages.insert(0, {"role": "system", "content": memory})
        return messages


ESCAPED_IMAGE_PLACEHOLDER = "<\u200bimage>"


def escape_image_placeholder(text: str) -> str:
    """``<image>`` → ``<ZWSP image>``: reads the same, can no longer be matched as the placeholder."""
    return text.replace(IMAGE_PLACEHOLDER, ESCAPED_IMAGE_PLACEHOLDER)


def png_data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def assemble(*, pages: Sequence[MemoryPage], recent: Sequence[RecentTurn], expansions: Sequence[Expansion],
             budget: int, ledger: bool, count: Callable[[str], int] = count_tokens) -> Context:
    """Fit memory into ``budget`` positions.

    Priority: recent turns (never cut: if they alone do not fit, BudgetError), then re-expanded
    pages and excerpts in the order given (most relevant first; one that does not fit is skipped),
    then page images with their ledgers, degraded oldest first and evicted when even Tiny does not
    fit. An excerpt follows its page's image.
    """
    turn_segments = []
    for t in recent:
        text = format_turn(t.role, t.text)
        turn_segments.append(TurnSegment(t.turn_id, t.role, t.text, text, count(text)))
    fixed = BOS_POSITIONS + sum(s.positions for s in turn_segments)
    if fixed > budget:
        raise BudgetError(f"the newest {len(recent)} turns alone need {fixed} positions, over the budget of {budget}; "
                          "raise the budget or lower recent_turns")

    by_id = {p.page_id: p for p in pages}
    expanded: dict[int, ExpandedSegment] = {}
    excerpts: dict[int, list[ExpandedSegment]] = {}
    seen_excerpts: set[tuple[int, str]] = set()
    used = fixed
    for e in expansions:
        page = by_id.get(e.page_id)
        if page is None or e.page_id in expanded or (e.page_id, e.text) in seen_excerpts:
            continue
        first, last = e.excerpt or (page.first_turn, page.last_turn)
        text = format_expanded(page.page_seq, first, last, e.text, excerpt=e.excerpt is not None)
        cost = count(text)
        if used + cost > budget:
            continue
        segment = ExpandedSegment(page.page_id, page.page_seq, e.tier, first, last, e.text, e.source, text, cost,
                                  excerpt=e.excerpt is not None)
        used += cost
        if e.excerpt is None:
            expanded[e.page_id] = segment
            used -= sum(x.positions for x in excerpts.pop(e.page_id, []))  # the whole page says it all
        else:
            seen_excerpts.add((e.page_id, e.text))
            excerpts.setdefault(e.page_id, []).append(segment)

    imaged = [p for p in pages if p.page_id not in expanded and p.tier is not None]
    ledgers = {}
    for p in imaged:
        if ledger and p.ledger:
            text = format_page_ledger(p.page_seq, p.ledger)
            ledgers[p.page_id] = LedgerSegment(p.page_id, p.ledger, text, count(text))
    costs = [PageCost(p.tier, ledgers[p.page_id].positions if p.page_id in ledgers else 0, p.pinned) for p in imaged]
    tiers = dict(zip((p.page_id for p in imaged), fit_pages(costs, budget - used)))

    segments: list[Segment] = []
    for p in pages:
        if p.page_id in expanded:
            segments.append(expanded[p.page_id])
        elif tiers.get(p.page_id) is not None:
            tier = tiers[p.page_id]
            segments.append(PageSegment(p.page_id, p.page_seq, tier, p.first_turn, p.last_turn, tier_slots(tier),
                                        _bind(p.load_image, tier)))
            if p.page_id in ledgers:
                segments.append(ledgers[p.page_id])
        if p.page_id not in expanded:
            segments.extend(sorted(excerpts.get(p.page_id, ()), key=lambda x: (x.first_turn, x.last_turn)))
    segments.extend(turn_segments)
    ctx = Context(segments, budget)
    assert ctx.positions <= budget, (ctx.positions, budget)  # the invariant fit_pages guarantees
    return ctx


def _bind(load: Callable[[str], Image.Image], tier: str) -> Callable[[], Image.Image]:
    return lambda: load(tier)
