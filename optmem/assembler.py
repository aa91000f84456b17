"""Context: the ordered segments optmem puts in front of a model, with exact position accounting.

A DeepSeek-OCR decoder sees ``[BOS]`` and then each segment in order: a page as its image slots
(Tiny 73, Small 111, Base 273, Large 421, Gundam 693 for a square page), every text segment
tokenised on its own with the plain-text tokenizer. So ``positions = 1 + sum(segment.positions)``
is exact by construction, and :func:`assemble` never returns a context over its budget.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from PIL import Image

from optmem.codec.segments import ImageSegment, TextSegment
from optmem.ledger import format_ledger
from renderers import Tier
from optmem.schedule import PageCost, fit_pages
from optmem.tokens import IMAGE_PLACEHOLDER, count_tokens

BOS_POSITIONS = 1


class BudgetError(ValueError):
    """The parts of a context that may never be cut do not fit in the budget."""


def format_turn(role: str, text: str) -> str:
    return f"{role}: {text}\n"


def format_page_ledger(page: int, strings: Sequence[str]) -> str:
    return f"[memory page {page}, {format_ledger(strings)}]\n"


def format_expanded(page: int, first_turn: int, last_turn: int, text: str, *, excerpt: bool = False) -> str:
    return f"[memory page {page}, turns {first_turn}-{last_turn}{', excerpt' if excerpt else ''}]\n{text}\n"


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
    page: int  # the page's number, as pages() and the context's text name it (the open page: the next one)
    tier: str
    first_turn: int
    last_turn: int
    positions: int
    image_source: "PageImageSource" = field(repr=False, compare=False)
    kind: Literal["page"] = "page"

    @property
    def slots(self) -> int:
        return self.positions

    def load_png(self) -> bytes:
        """The page at this segment's tier as PNG bytes (the stored bytes when the page is stored
        at that tier: nothing is re-encoded)."""
        return self.image_source.png(self.tier)

    def load_image(self) -> Image.Image:
        """The page at this segment's tier (square, ``tier`` side; Gundam keeps the 1280 page)."""
        return self.image_source.image(self.tier)


@dataclass(frozen=True)
class LedgerSegment:
    page: int
    strings: tuple[str, ...]
    text: str
    positions: int
    kind: Literal["ledger"] = "ledger"


@dataclass(frozen=True)
class ExpandedSegment:
    page: int
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


class PageImageSource(Protocol):
    """Where a page's image comes from, at any tier at or below the one it is stored at."""

    def png(self, tier: str) -> bytes: ...

    def image(self, tier: str) -> Image.Image: ...


@dataclass(frozen=True)
class MemoryPage:
    """A page the schedule keeps in context, oldest first, as the assembler needs it."""

    number: int
    tier: str | None  # None: out of the context unless re-expanded
    first_turn: int
    last_turn: int
    ledger: tuple[str, ...]
    image_source: PageImageSource
    pinned: bool = False


@dataclass(frozen=True)
class Expansion:
    """A page, or with ``excerpt`` (its first and last turn) a part of one, re-expanded to text
    because the query needs it. A whole page replaces the page's image; an excerpt goes beside it."""

    page: int
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
        """Page number -> tier of every page in the context as an image."""
        return {s.page: s.tier for s in self.segments if s.kind == "page"}

    def expanded_pages(self) -> list[int]:
        """Pages re-expanded whole (not those with only excerpts in the context)."""
        return [s.page for s in self.segments if s.kind == "expanded" and not s.excerpt]

    def codec_segments(self) -> list[TextSegment | ImageSegment]:
        """The context as the DeepSeek-OCR codec takes it (``codec.splice(ctx.codec_segments())``):
        one ImageSegment per page at its tier, one TextSegment per text segment, in order."""
        return [ImageSegment(s.load_image(), s.tier) if s.kind == "page" else TextSegment(s.text) for s in self.segments]

    def to_text(self) -> str:
        """Everything a text-only model can read: re-expanded pages, ledgers, recent turns.
        Page images are named by a one-line marker so the reader knows memory exists there."""
        parts = []
        for s in self.segments:
            if s.kind == "page":
                parts.append(f"[memory page {s.page}, turns {s.first_turn}-{s.last_turn}: image at {s.tier} tier]\n")
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
                memory.append({"type": "text", "text": f"Memory page {s.page} (turns {s.first_turn}-{s.last_turn}, {s.tier}):"})
                memory.append({"type": "image_url", "image_url": {"url": png_data_url(s.load_png())}})
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


def png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


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

    by_number = {p.number: p for p in pages}
    expanded: dict[int, ExpandedSegment] = {}
    excerpts: dict[int, list[ExpandedSegment]] = {}
    seen_excerpts: set[tuple[int, str]] = set()
    used = fixed
    for e in expansions:
        page = by_number.get(e.page)
        if page is None or e.page in expanded or (e.page, e.text) in seen_excerpts:
            continue
        first, last = e.excerpt or (page.first_turn, page.last_turn)
        text = format_expanded(page.number, first, last, e.text, excerpt=e.excerpt is not None)
        cost = count(text)
        if used + cost > budget:
            continue
        segment = ExpandedSegment(page.number, e.tier, first, last, e.text, e.source, text, cost,
                                  excerpt=e.excerpt is not None)
        used += cost
        if e.excerpt is None:
            expanded[e.page] = segment
            used -= sum(x.positions for x in excerpts.pop(e.page, []))  # the whole page says it all
        else:
            seen_excerpts.add((e.page, e.text))
            excerpts.setdefault(e.page, []).append(segment)

    imaged = [p for p in pages if p.number not in expanded and p.tier is not None]
    ledgers = {}
    for p in imaged:
        if ledger and p.ledger:
            text = format_page_ledger(p.number, p.ledger)
            ledgers[p.number] = LedgerSegment(p.number, p.ledger, text, count(text))
    costs = [PageCost(p.tier, ledgers[p.number].positions if p.number in ledgers else 0, p.pinned) for p in imaged]
    tiers = dict(zip((p.number for p in imaged), fit_pages(costs, budget - used)))

    segments: list[Segment] = []
    for p in pages:
        if p.number in expanded:
            segments.append(expanded[p.number])
        elif tiers.get(p.number) is not None:
            tier = tiers[p.number]
            segments.append(PageSegment(p.number, tier, p.first_turn, p.last_turn, Tier(tier).slots, p.image_source))
            if p.number in ledgers:
                segments.append(ledgers[p.number])
        if p.number not in expanded:
            segments.extend(sorted(excerpts.get(p.number, ()), key=lambda x: (x.first_turn, x.last_turn)))
    segments.extend(turn_segments)
    ctx = Context(segments, budget)
    assert ctx.positions <= budget, (ctx.positions, budget)  # the invariant fit_pages guarantees
    return ctx
